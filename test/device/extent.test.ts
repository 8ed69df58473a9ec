// Extent algebra against a naive model: a bitset with one bit per byte.
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { Extent, alignToBlocks, batches, coalesce, intersect, normalize, splitAt, subtract, totalBytes, union, checkExtent } from '../../lib/device/extent';

const SPACE = 256; // bytes in the model; small so the bitset stays cheap

function toBits(extents: Iterable<Extent>): boolean[] {
  const bits = new Array<boolean>(SPACE).fill(false);
  for (const [off, len] of extents) for (let i = off; i < off + len; i++) bits[i] = true;
  return bits;
}

/** The canonical extent list of a bitset: maximal runs, ascending. */
function fromBits(bits: boolean[]): Extent[] {
  const out: Extent[] = [];
  for (let i = 0; i < bits.length; ) {
    if (!bits[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < bits.length && bits[j]) j++;
    out.push([i, j - i]);
    i = j;
  }
  return out;
}

// Random (possibly overlapping, unsorted) extents inside the model space.
const anyExtents = fc.array(
  fc.tuple(fc.integer({ min: 0, max: SPACE - 1 }), fc.integer({ min: 1, max: 64 })).map(([o, l]) => [o, Math.min(l, SPACE - o)] as Extent),
  { maxLength: 20 },
);
const sortedExtents = anyExtents.map((xs) => [...xs].sort((a, b) => a[0] - b[0]));

/** Checks the invariant every result must keep: sorted, disjoint, non-adjacent, non-empty. */
function assertCanonical(xs: Extent[]): void {
  for (let i = 0; i < xs.length; i++) {
    assert.ok(xs[i][1] > 0, `empty extent at ${i}`);
    if (i) assert.ok(xs[i][0] > xs[i - 1][0] + xs[i - 1][1], `extents ${i - 1} and ${i} touch or overlap: ${JSON.stringify(xs)}`);
  }
}

describe('extent algebra (property-based against a bitset)', () => {
  it('coalesce of a sorted stream equals the bitset runs', () => {
    fc.assert(fc.property(sortedExtents, (xs) => {
      const got = [...coalesce(xs)];
      assertCanonical(got);
      assert.deepEqual(got, fromBits(toBits(xs)));
    }));
  });

  it('normalize accepts any order', () => {
    fc.assert(fc.property(anyExtents, (xs) => {
      assert.deepEqual(normalize(xs), fromBits(toBits(xs)));
    }));
  });

  it('intersect, union, subtract match bitwise and, or, and-not', () => {
    fc.assert(fc.property(sortedExtents, sortedExtents, (a, b) => {
      const A = toBits(a);
      const B = toBits(b);
      const i = [...intersect(a, b)];
      const u = [...union(a, b)];
      const s = [...subtract(a, b)];
      assertCanonical(u);
      assert.deepEqual(fromBits(toBits(i)), fromBits(A.map((x, k) => x && B[k])));
      assert.deepEqual(u, fromBits(A.map((x, k) => x || B[k])));
      assert.deepEqual(fromBits(toBits(s)), fromBits(A.map((x, k) => x && !B[k])));
      // Pieces of intersect and subtract never overlap each other.
      assert.equal(totalBytes(i), toBits(i).filter(Boolean).length);
      assert.equal(totalBytes(s), toBits(s).filter(Boolean).length);
    }));
  });

  it('alignToBlocks covers exactly the touched blocks, clipped at the limit', () => {
    fc.assert(fc.property(sortedExtents, fc.constantFrom(1, 4, 16, 64), fc.integer({ min: 1, max: SPACE }), (xs, bs, limit) => {
      const got = [...alignToBlocks(xs, bs, limit)];
      assertCanonical(got);
      const bits = toBits(xs);
      const want = new Array<boolean>(SPACE).fill(false);
      for (let k = 0; k < SPACE; k++) if (bits[k]) for (let j = Math.floor(k / bs) * bs; j < Math.min((Math.floor(k / bs) + 1) * bs, limit); j++) want[j] = true;
      assert.deepEqual(got, fromBits(want));
    }));
  });

  it('splitAt cuts into pieces of at most maxBytes that cover the same bytes', () => {
    fc.assert(fc.property(sortedExtents, fc.integer({ min: 1, max: 40 }), (xs, max) => {
      const c = [...coalesce(xs)];
      const pieces = [...splitAt(c, max)];
      for (const p of pieces) assert.ok(p[1] > 0 && p[1] <= max);
      assert.deepEqual([...coalesce(pieces)], c);
      // Each piece starts a whole number of maxBytes into its extent.
      for (const p of pieces) assert.ok(c.some(([o, l]) => p[0] >= o && p[0] < o + l && (p[0] - o) % max === 0));
    }));
  });

  it('batches hold at most maxBytes each and, concatenated, the same stream', () => {
    fc.assert(fc.property(sortedExtents, fc.integer({ min: 1, max: 100 }), (xs, max) => {
      const c = [...coalesce(xs)];
      const bs = [...batches(c, max)];
      for (const b of bs) assert.ok(b.length > 0 && totalBytes(b) <= max);
      assert.deepEqual([...coalesce(bs.flat())], c);
    }));
  });

  it('streams lazily: works on a generator of a million blocks without building it', () => {
    let produced = 0;
    function* blocks(): Generator<Extent> {
      for (let i = 0; i < 1_000_000; i++) {
        produced++;
        yield [i * 4096, 4096];
      }
    }
    const it = coalesce(blocks())[Symbol.iterator]();
    const first = it.next();
    assert.deepEqual(first.value, [0, 1_000_000 * 4096]);
    assert.equal(produced, 1_000_000);
    // With gaps between blocks, coalesce can answer after peeking one ahead.
    function* gapped(): Generator<Extent> {
      for (let i = 0; i < 1_000_000; i++) {
        produced++;
        yield [i * 8192, 4096];
      }
    }
    produced = 0;
    const lazy = intersect(gapped(), [[0, 8192 * 10]])[Symbol.iterator]();
    assert.deepEqual(lazy.next().value, [0, 4096]);
    assert.ok(produced < 1_000_000, `intersect read ${produced} blocks before its first answer`);
  });

  it('coalesce rejects an unsorted stream, naming the offsets', () => {
    assert.throws(() => [...coalesce([[100, 1], [50, 1]])], /sorted by offset: 50 after 100/);
  });

  it('checkExtent names a bad value', () => {
    assert.throws(() => checkExtent([-1, 10]), (e: Error) => e instanceof RangeError && /-1/.test(e.message));
    assert.throws(() => checkExtent([0, 0]), /length must be a positive integer, got 0/);
    assert.throws(() => checkExtent([1.5, 10]), /1\.5/);
    assert.throws(() => checkExtent([Number.MAX_SAFE_INTEGER, 10]), /beyond 2\^53/);
  });
});

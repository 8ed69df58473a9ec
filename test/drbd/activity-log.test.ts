// The activity log: crafted crc32c-checked transactions on real meta-data;
// our AL extents must be exactly what `drbdmeta apply-al` folds into the
// bitmap, and update({clean: true}) must leave what apply-al leaves.
import { strict as assert } from 'node:assert';
import { readMetadataAt } from '../../lib/drbd';
import { nb } from '../../lib/drbd/native';
import type { Extent } from '../../lib/device/extent';
import { requires } from '../helpers/env';
import { Case, craftAl, makeCase, makeUnclean } from './cases';
import { DumpModel, Fmt, drbdmeta, dump, prng, readAt, writeAt } from './drbdmeta';

const SEED = Number(process.env.BISYNC_SEED ?? Date.now() % 100000);

function bitsOf(words: bigint[], nBits: number): Set<number> {
  const s = new Set<number>();
  words.forEach((w, i) => {
    for (let b = 0; b < 64; b++) if (i * 64 + b < nBits && ((w >> BigInt(b)) & 1n) === 1n) s.add(i * 64 + b);
  });
  return s;
}

function slotBits(m: DumpModel): Array<Set<number>> {
  const nBits = Math.ceil(m.laSizeSect / 8);
  return m.words.map((w) => bitsOf(w, nBits));
}

function build(fmt: Fmt, seed: number): Case {
  const rnd = prng(seed);
  const c = makeCase(fmt, fmt === 'v08' ? 'internal' : 'flex-external', rnd, fmt === 'v09' ? { maxPeers: 2, peersWithSlot: 1 } : {});
  craftAl(c, rnd, 3 + Math.floor(rnd() * 12));
  makeUnclean(c);
  return c;
}

async function alOf(c: Case): Promise<Extent[]> {
  const h = await readMetadataAt(c.backing, { metaDevice: c.metaDevice, index: c.index });
  try {
    assert.equal(h.md.clean, false);
    const r = await h.md.report();
    const al = await h.md.alExtents();
    assert.deepEqual(r.alExtents, al);
    return al;
  } finally {
    await h.close();
  }
}

describe('drbd activity log vs drbdmeta apply-al', function () {
  this.timeout(300000);
  before(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
  });

  it('initialises the AL byte for byte as drbdmeta create-md does (crc32c)', function () {
    const c = makeCase('v08', 'internal', prng(SEED));
    try {
      const al = readAt(c.target.mdDev, c.model.alOffset, 32768);
      const ours = Buffer.alloc(32768);
      nb.alInitialize(ours);
      assert.ok(al.equals(ours));
      // The CRC-32C check value, with the inversions DRBD leaves out applied by hand.
      assert.equal((nb.crc32c(Buffer.from('123456789'), 0xffffffff) ^ 0xffffffff) >>> 0, 0xe3069283);
    } finally {
      c.cleanup();
    }
  });

  for (const fmt of ['v08', 'v09'] as Fmt[]) {
    it(`${fmt}: AL extents are what apply-al sets, and update({clean}) leaves what apply-al leaves (seed ${SEED})`, async function () {
      for (let round = 0; round < 3; round++) {
        const seed = SEED * 10 + round + (fmt === 'v09' ? 5 : 0);
        const a = build(fmt, seed);
        const b = build(fmt, seed);
        try {
          assert.deepEqual(b.model.words, a.model.words, 'same seed, same bitmap');
          const al = await alOf(a);
          assert.deepEqual(await alOf(b), al);
          assert.ok(al.length > 0, 'the crafted AL has hot extents');
          const h0 = await readMetadataAt(a.backing, { metaDevice: a.metaDevice, index: a.index });
          const changes = await h0.md.changeSet();
          await h0.close();
          // drbdmeta folds the AL into every slot.
          drbdmeta(a.target, ['apply-al']);
          const applied = dump(a.target, false);
          const nBits = Math.ceil(a.model.laSizeSect / 8);
          const before = slotBits(a.model);
          const after = slotBits(applied);
          const alBits = new Set<number>();
          for (const [o, l] of al) for (let x = Math.floor(o / 4096); x < Math.min(Math.ceil((o + l) / 4096), nBits); x++) alBits.add(x);
          for (let s = 0; s < after.length; s++) {
            const added = [...after[s]].filter((x) => !before[s].has(x)).sort((p, q) => p - q);
            const expected = [...alBits].filter((x) => !before[s].has(x)).sort((p, q) => p - q);
            assert.deepEqual(added, expected, `slot ${s}: bits apply-al added`);
            // apply-al works in whole extents: every set AL bit is a full extent's bit.
            for (const x of after[s]) assert.ok(before[s].has(x) || alBits.has(x));
          }
          // The change set is the bitmap plus the AL.
          const slot = 0; // v09: the default peer has slot 0
          const cs = new Set<number>();
          for (const [o, l] of changes) for (let x = Math.floor(o / 4096); x < Math.ceil((o + l) / 4096); x++) cs.add(x);
          assert.deepEqual([...cs].sort((p, q) => p - q), [...after[slot]].sort((p, q) => p - q));

          // Our clean update on the twin gives the same on-disk result.
          const h = await readMetadataAt(b.backing, { metaDevice: b.metaDevice, index: b.index }, { write: true });
          try {
            await h.md.update({ clean: true });
            assert.equal(h.md.clean, true);
            assert.deepEqual(await h.md.alExtents(), []);
          } finally {
            await h.close();
          }
          const ours = dump(b.target, false); // must work without --force
          assert.deepEqual(slotBits(ours), after);
          assert.deepEqual(drbdmeta(b.target, ['get-gi', ...(fmt === 'v09' ? ['--node-id=' + b.model.peers.findIndex((p) => p?.bitmapIndex === 0)] : [])]), drbdmeta(a.target, ['get-gi', ...(fmt === 'v09' ? ['--node-id=' + a.model.peers.findIndex((p) => p?.bitmapIndex === 0)] : [])]));
          assert.ok(readAt(b.target.mdDev, b.model.alOffset, 32768).equals(readAt(a.target.mdDev, a.model.alOffset, 32768)), 'AL re-initialised like apply-al');
          const sbA = readAt(a.target.mdDev, a.model.mdOffset, 4096);
          const sbB = readAt(b.target.mdDev, b.model.mdOffset, 4096);
          assert.equal(sbB.readUInt32BE(0x3c), sbA.readUInt32BE(0x3c), 'magic');
          assert.equal(sbB.readUInt32BE(0x38), sbA.readUInt32BE(0x38), 'flags');
          // apply-al after ours changes nothing.
          drbdmeta(b.target, ['apply-al']);
          assert.deepEqual(slotBits(dump(b.target, false)), after);
          assert.ok(readAt(b.target.mdDev, b.model.mdOffset, 4096).equals(sbB));
        } finally {
          a.cleanup();
          b.cleanup();
        }
      }
    });
  }

  it('rejects an AL with two corrupt transactions, naming the block', async function () {
    const c = build('v08', SEED + 77);
    try {
      const bad = Buffer.alloc(4096, 0x5a);
      writeAt(c.target.mdDev, c.model.alOffset + 2 * 4096, bad);
      writeAt(c.target.mdDev, c.model.alOffset + 5 * 4096, bad);
      await assert.rejects(alOf(c), { code: 'ERR_BAD_METADATA', message: /2 of 8 transaction blocks fail the magic or crc32c check \(first: block 2\)/ });
      const h = await readMetadataAt(c.backing, {}, { write: true });
      try {
        await assert.rejects(h.md.update({ clean: true }), { code: 'ERR_BAD_METADATA' });
      } finally {
        await h.close();
      }
      assert.equal(readAt(c.target.mdDev, c.model.mdOffset + 0x3c, 4).readUInt32BE(0), 0x8374026c, 'nothing written');
    } finally {
      c.cleanup();
    }
  });

  it('rejects an AL whose transaction numbers break the ring sequence', async function () {
    const c = build('v09', SEED + 78);
    try {
      assert.ok((await alOf(c)).length > 0, 'the crafted AL replays');
      // Two update transactions claiming the same number.
      for (const pos of [1, 4]) writeAt(c.target.mdDev, c.model.alOffset + pos * 4096, nb.alEncode({ trNumber: 4242, type: 0, contextSize: 257, updates: [[0, 1]] }));
      await assert.rejects(alOf(c), { code: 'ERR_BAD_METADATA', message: /transaction number \d+ in block \d does not fit the ring sequence \(oldest \d+, newest \d+\)/ });
    } finally {
      c.cleanup();
    }
  });
});

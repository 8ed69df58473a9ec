// Property tests (fast-check) of the TS decoder and the native bitmap scanner,
// on regular files: no root needed.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { BlockDevice } from '../../lib/device/block-device';
import { BisyncError } from '../../lib/device/errors';
import { bitRanges, editBitmap, scanSlot, SlotGeometry } from '../../lib/drbd/bitmap';
import { nb } from '../../lib/drbd/native';
import { decodeSuperblock, encodeSuperblock, layoutOf, MAGIC } from '../../lib/drbd/superblock';
import { formatUuid, parseUuid } from '../../lib/drbd/uuid';
import type { Extent } from '../../lib/device/extent';
import { tmpDir } from '../helpers/env';

const magics = [MAGIC.V08, MAGIC.V84_UNCLEAN, MAGIC.V09, 0, 0x8374026a];

/** A 4 KiB superblock with random fields (and a plausible magic most of the time). */
const superblockBytes = fc
  .tuple(fc.uint8Array({ minLength: 0x570, maxLength: 0x570 }), fc.constantFrom(...magics), fc.boolean())
  .map(([bytes, magic, plausible]) => {
    const b = Buffer.alloc(4096);
    Buffer.from(bytes).copy(b);
    b.writeUInt32BE(magic, 0x3c);
    if (plausible) {
      b.writeUInt32BE(4096, 0x50);
      b.writeBigUInt64BE(BigInt(bytes[0]) * 4096n, 0);
      b.writeUInt32BE(1, magic === MAGIC.V09 ? 0x60 : 0x58);
      b.writeUInt32BE(8, magic === MAGIC.V09 ? 0x64 : 0x5c);
      if (magic === MAGIC.V09) {
        b.writeUInt32BE(1 + (bytes[1] % 32), 0x58);
        b.writeInt32BE((bytes[2] % 33) - 1, 0x5c);
        for (let n = 0; n < 32; n++) b.writeInt32BE(-1, 0x70 + n * 32 + 20);
      }
    }
    return b;
  });

describe('drbd decoder properties', function () {
  this.timeout(120000);

  it('UUIDs round-trip through formatUuid and parseUuid', function () {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const s = formatUuid(v);
        assert.match(s, /^[0-9A-F]{16}$/);
        assert.equal(parseUuid(s), v);
        assert.equal(parseUuid(`0x${s.toLowerCase()}`), v);
      }),
    );
    for (const bad of ['', 'xyz', '0x', '12345678901234567', '-1', ' 1']) assert.throws(() => parseUuid(bad), { code: 'ERR_BAD_METADATA' });
  });

  it('decoding any 4 KiB either yields sane fields or throws ERR_BAD_METADATA, and re-encodes to the same bytes', function () {
    fc.assert(
      fc.property(superblockBytes, fc.integer({ min: 8192, max: 2 ** 40 }), (buf, devSize) => {
        let sb;
        try {
          sb = decodeSuperblock(buf, 'test');
        } catch (e) {
          assert.ok(e instanceof BisyncError && e.code === 'ERR_BAD_METADATA', String(e));
          return;
        }
        assert.ok(sb.bmBytesPerBit >= 4096 && sb.maxPeers >= 1 && sb.maxPeers <= 32 && sb.alStripes >= 1);
        assert.ok(encodeSuperblock(sb, buf).equals(buf));
        for (const index of ['internal', 'flex', 0] as const) {
          try {
            const l = layoutOf(sb, index, index === 'internal' ? devSize - 4096 : 0, devSize, devSize, 'test');
            assert.ok(l.bmStart >= 0 && l.bmStart + l.bmBytes <= devSize && l.alStart >= 0 && l.alStart + l.alBytes <= devSize);
            assert.ok(l.nBits * sb.bmBytesPerBit >= l.dataSize);
          } catch (e) {
            assert.ok(e instanceof BisyncError && e.code === 'ERR_BAD_METADATA', String(e));
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('AL replay of arbitrary bytes never crashes and reports consistent counts', function () {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40000 }), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 10 }), (bytes, stripes, size) => {
        const r = nb.alReplay(Buffer.from(bytes), stripes, size);
        assert.ok(r.valid <= r.blocks && r.updates <= r.valid);
        assert.deepEqual(r.hotExtents, [...new Set(r.hotExtents)].sort((a, b) => a - b));
      }),
      { numRuns: 500 },
    );
  });

  describe('bitmap scan and edit on a file', function () {
    let dir: string;
    before(() => (dir = tmpDir('bisync-bm-')));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const reference = (slotBits: Uint8Array, nBits: number, B: number, dataSize: number): Extent[] => {
      const out: Array<[number, number]> = [];
      for (let n = 0; n < nBits; n++) {
        if (!slotBits[n]) continue;
        const off = n * B;
        const len = Math.min(B, dataSize - off);
        const last = out[out.length - 1];
        if (last && last[0] + last[1] === off) last[1] += len;
        else out.push([off, len]);
      }
      return out;
    };

    it('scanSlot finds exactly the set bits of any slot of an interleaved bitmap', async function () {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 2_000_000 }),
          fc.constantFrom(1, 2, 3, 4, 7, 32),
          fc.nat(),
          fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 5000 })), { maxLength: 30 }),
          fc.constantFrom(4096, 65536),
          async (dataSize, maxPeers, slotSeed, runs, B) => {
            const slot = slotSeed % maxPeers;
            const nBits = Math.ceil(dataSize / B);
            const wordsPerSlot = Math.ceil(nBits / 64) * 2;
            const area = Buffer.alloc(Math.ceil((wordsPerSlot * 4 * maxPeers) / 4096) * 4096 + 4096, 0);
            const bits = Array.from({ length: maxPeers }, () => new Uint8Array(wordsPerSlot * 32));
            // Fill every slot (bits past nBits too: they must be ignored).
            for (let s = 0; s < maxPeers; s++) {
              for (const [f, len] of runs) {
                const start = Math.floor(f * wordsPerSlot * 32);
                for (let n = start; n < Math.min(start + len, wordsPerSlot * 32); n++) bits[s][n] = (n + s) % 3 !== 0 || s === slot ? 1 : 0;
              }
              for (let n = 0; n < wordsPerSlot * 32; n++) if (bits[s][n]) area[4 * ((n >>> 5) * maxPeers + s) + ((n & 31) >>> 3)] |= 1 << (n & 7);
            }
            const file = path.join(dir, 'bm.img');
            fs.writeFileSync(file, Buffer.concat([Buffer.alloc(4096), area]));
            const dev = await BlockDevice.open(file);
            try {
              const g: SlotGeometry = { bmStart: 4096, maxPeers, nBits, wordsPerSlot, bytesPerBit: B, dataSize };
              const stats = { bitsSet: 0 };
              const got: Extent[] = [];
              for await (const e of scanSlot(dev, g, slot, stats)) got.push(e);
              assert.deepEqual(got, reference(bits[slot], nBits, B, dataSize));
              assert.equal(stats.bitsSet, bits[slot].slice(0, nBits).reduce((a, b) => a + b, 0));
            } finally {
              await dev.close();
            }
          },
        ),
        { numRuns: 60 },
      );
    });

    it('scanSlot joins a run that one native scan ends and the next begins (every 4 Mi bits)', async () => {
      const edge = 2 ** 17 * 32; // the first bit of the second scan
      const nBits = edge + 1000;
      const wordsPerSlot = Math.ceil(nBits / 64) * 2;
      const area = Buffer.alloc(Math.ceil((wordsPerSlot * 4) / 4096) * 4096);
      const set = (from: number, to: number): void => {
        for (let n = from; n < to; n++) area[n >>> 3] |= 1 << (n & 7);
      };
      set(5, 6);
      set(edge - 10, edge + 10);
      set(nBits - 1, nBits);
      const file = path.join(dir, 'bm-edge.img');
      fs.writeFileSync(file, Buffer.concat([Buffer.alloc(4096), area]));
      const dev = await BlockDevice.open(file);
      try {
        const g: SlotGeometry = { bmStart: 4096, maxPeers: 1, nBits, wordsPerSlot, bytesPerBit: 4096, dataSize: nBits * 4096 };
        const stats = { bitsSet: 0 };
        const got: Extent[] = [];
        for await (const e of scanSlot(dev, g, 0, stats)) got.push(e);
        assert.deepEqual(got, [[5 * 4096, 4096], [(edge - 10) * 4096, 20 * 4096], [(nBits - 1) * 4096, 4096]]);
        assert.equal(stats.bitsSet, 22);
      } finally {
        await dev.close();
      }
    });

    it('editBitmap clears and sets one slot without touching the others', async function () {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(1, 2, 4),
          fc.nat(),
          fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 3_000_000 })), { maxLength: 20 }),
          fc.boolean(),
          async (maxPeers, slotSeed, extents, clear) => {
            const slot = slotSeed % maxPeers;
            const dataSize = 9 * 2 ** 30 + 512; // 9 GiB: more than one edit chunk
            const nBits = Math.ceil(dataSize / 4096);
            const wordsPerSlot = Math.ceil(nBits / 64) * 2;
            const areaBytes = Math.ceil((wordsPerSlot * 4 * maxPeers) / 4096) * 4096;
            const file = path.join(dir, 'edit.img');
            const area = Buffer.alloc(areaBytes);
            for (let i = 0; i < areaBytes; i += 251) area[i] = 0x3c;
            fs.writeFileSync(file, area);
            const g: SlotGeometry = { bmStart: 0, maxPeers, nBits, wordsPerSlot, bytesPerBit: 4096, dataSize };
            const set = extents.map(([f, len]) => [Math.floor(f * (dataSize - 1)), len] as Extent).map(([o, l]) => [o, Math.min(l, dataSize - o)] as Extent);
            const before: Extent[][] = [];
            let dev = await BlockDevice.open(file, { write: true });
            try {
              for (let s = 0; s < maxPeers; s++) {
                const got: Extent[] = [];
                for await (const e of scanSlot(dev, g, s)) got.push(e);
                before.push(got);
              }
              const ranges = [...bitRanges([...set].sort((a, b) => a[0] - b[0]), g)];
              await editBitmap(dev, g, { clearSlots: clear ? [slot] : [], setSlots: [slot], set: ranges });
            } finally {
              await dev.close();
            }
            dev = await BlockDevice.open(file);
            try {
              for (let s = 0; s < maxPeers; s++) {
                const got: Extent[] = [];
                for await (const e of scanSlot(dev, g, s)) got.push(e);
                if (s !== slot) assert.deepEqual(got, before[s], `slot ${s} untouched`);
                else {
                  const bitsWanted = new Set<number>();
                  for (const [o, l] of set) for (let n = Math.floor(o / 4096); n < Math.ceil((o + l) / 4096); n++) bitsWanted.add(n);
                  if (!clear) for (const [o, l] of before[s]) for (let n = o / 4096; n < Math.ceil((o + l) / 4096); n++) bitsWanted.add(n);
                  const gotBits = new Set<number>();
                  for (const [o, l] of got) for (let n = o / 4096; n < Math.ceil((o + l) / 4096); n++) gotBits.add(n);
                  assert.deepEqual([...gotBits].sort((a, b) => a - b), [...bitsWanted].sort((a, b) => a - b));
                }
              }
            } finally {
              await dev.close();
            }
          },
        ),
        { numRuns: 15 },
      );
    });
  });
});

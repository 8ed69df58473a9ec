// diffDevices and copyExtents against a naive byte-by-byte model, on files and
// on loop devices, with random data and random differing bytes.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice } from '../../lib/device/block-device';
import { copyExtents, diffDevices } from '../../lib/device/compare';
import { BisyncError, ErrorCode } from '../../lib/device/errors';
import { Extent } from '../../lib/device/extent';
import { native } from '../../lib/native/binding';
import { Loop, makeLoop, requires, tmpDir } from '../helpers/env';

/** Differing blocks found by comparing every byte, as coalesced extents. */
function naiveDiff(a: Buffer, b: Buffer, blockSize: number): Extent[] {
  const out: Array<[number, number]> = [];
  for (let off = 0; off < a.length; off += blockSize) {
    const len = Math.min(blockSize, a.length - off);
    let differs = false;
    for (let i = off; i < off + len && !differs; i++) differs = a[i] !== b[i];
    if (!differs) continue;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === off) last[1] += len;
    else out.push([off, len]);
  }
  return out;
}

/** Flips a random number of single bytes, some in neighbouring blocks, some in the tail. */
function mutate(buf: Buffer, seed: number): Buffer {
  const out = Buffer.from(buf);
  let x = seed;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  const changes = 1 + rnd(40);
  for (let i = 0; i < changes; i++) {
    const at = rnd(out.length);
    out[at] ^= 1 + rnd(255);
  }
  out[out.length - 1] ^= seed & 1 ? 0x5a : 0; // sometimes the very last byte
  return out;
}

async function collect(a: BlockDevice, b: BlockDevice, blockSize: number, opts = {}): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const e of diffDevices(a, b, blockSize, opts)) out.push(e);
  return out;
}

describe('diffDevices and copyExtents on files', () => {
  let dir: string;
  before(() => {
    dir = tmpDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [size, blockSize, batchBytes, seed] of [
    [1 << 20, 4096, 64 << 20, 1],
    [(1 << 20) + 1000, 4096, 64 << 10, 2], // unaligned size, many small batches
    [3 * 4096 + 512, 512, 4096, 3],
    [5 << 20, 65536, 1 << 20, 4],
    [(9 << 20) + 4096, 4096, 4 << 20, 5], // batches larger than the native chunk
    [(9 << 20) + 4096, 4 << 20, 8 << 20, 6], // blocks larger than the native chunk
    [3 << 20, 2 << 20, 2 << 20, 8],
  ]) {
    it(`finds exactly the blocks a byte-by-byte comparison finds (size ${size}, block ${blockSize}, batch ${batchBytes})`, async () => {
      const a = crypto.randomBytes(size);
      const b = mutate(a, seed);
      fs.writeFileSync(path.join(dir, 'a'), a);
      fs.writeFileSync(path.join(dir, 'b'), b);
      const [da, db] = [await BlockDevice.open(path.join(dir, 'a')), await BlockDevice.open(path.join(dir, 'b'))];
      try {
        const want = naiveDiff(a, b, blockSize);
        assert.ok(want.length > 0);
        assert.deepEqual(await collect(da, db, blockSize, { batchBytes, concurrency: 3 }), want);
        assert.deepEqual(await collect(da, da, blockSize, { batchBytes }), []);
      } finally {
        await Promise.all([da.close(), db.close()]);
      }
    });
  }

  it('reports progress up to the device size', async () => {
    const a = crypto.randomBytes(1 << 20);
    fs.writeFileSync(path.join(dir, 'p'), a);
    const d = await BlockDevice.open(path.join(dir, 'p'));
    const seen: number[] = [];
    await collect(d, d, 4096, { batchBytes: 256 << 10, onProgress: (n: number) => seen.push(n) });
    await d.close();
    assert.deepEqual(seen, [1, 2, 3, 4].map((i) => i * (256 << 10)));
  });

  it('compares only the given extents', async () => {
    const a = crypto.randomBytes(64 * 4096);
    const b = Buffer.from(a);
    for (const blk of [1, 10, 11, 40]) b[blk * 4096 + 7] ^= 1;
    fs.writeFileSync(path.join(dir, 'xa'), a);
    fs.writeFileSync(path.join(dir, 'xb'), b);
    const [da, db] = [await BlockDevice.open(path.join(dir, 'xa')), await BlockDevice.open(path.join(dir, 'xb'))];
    try {
      const got = await collect(da, db, 4096, { extents: [[0, 4096 * 11], [4096 * 30, 4096 * 20]] });
      assert.deepEqual(got, [[4096 * 1, 4096], [4096 * 10, 4096], [4096 * 40, 4096]]);
    } finally {
      await Promise.all([da.close(), db.close()]);
    }
  });

  // Scattered 4 KiB blocks (what a split brain leaves) reach the device together, a window's
  // worth at a time; odd-sized and unaligned extents among them one at a time. Every operation
  // must give what it gives one extent at a time.
  it('compares, hashes, copies, gathers and scatters many scattered blocks as it does one at a time', async () => {
    const size = 8 << 20;
    const a = crypto.randomBytes(size);
    const b = Buffer.from(a);
    const x: Extent[] = Array.from({ length: 600 }, (_, i): Extent => [i * 3 * 4096 + (i % 3) * 4096, 4096]);
    x.push([size - 4096 + 512, 3584]); // an odd tail, 512-aligned
    const differ = new Set([0, 1, 17, 255, 256, 599]);
    for (const i of differ) b[x[i][0] + 100] ^= 1;
    a.fill(0, x[5][0], x[5][0] + 4096); // a zero block
    b.fill(0, x[5][0], x[5][0] + 4096);
    fs.writeFileSync(path.join(dir, 'sa'), a);
    fs.writeFileSync(path.join(dir, 'sb'), b);
    const [da, db] = [await BlockDevice.open(path.join(dir, 'sa')), await BlockDevice.open(path.join(dir, 'sb'), { write: true })];
    try {
      const got = await collect(da, db, 4096, { extents: x.slice(0, 600) });
      assert.deepEqual(got, [...differ].map((i) => x[i]));
      const zero: number[] = [];
      const digests: Buffer[] = [];
      for await (const h of da.hashExtents(x.slice(0, 600), 4096)) {
        digests.push(h.digests);
        zero.push(...h.zero);
      }
      const want = Buffer.concat(x.slice(0, 600).map(([o]) => native.hashBuffer(a.subarray(o, o + 4096))));
      assert.ok(Buffer.concat(digests).equals(want), 'per-block digests as if each block were hashed alone');
      assert.deepEqual(zero.flatMap((z, i) => (z ? [i] : [])), [5]);
      assert.ok((await da.gather(x)).equals(Buffer.concat(x.map(([o, l]) => a.subarray(o, o + l)))));
      await copyExtents(da, db, x);
      await db.flush();
      assert.ok(fs.readFileSync(path.join(dir, 'sb')).equals(a), 'copied extents hold the source bytes; the bytes between are as they were');
      const fresh = crypto.randomBytes(x.reduce((n, [, l]) => n + l, 0));
      await db.scatter(x, fresh);
      await db.flush();
      const after = fs.readFileSync(path.join(dir, 'sb'));
      assert.ok(Buffer.concat(x.map(([o, l]) => after.subarray(o, o + l))).equals(fresh));
      const outside = Buffer.from(after);
      for (const [o, l] of x) a.copy(outside, o, o, o + l);
      assert.ok(outside.equals(a), 'scatter wrote nothing between the extents');
    } finally {
      await Promise.all([da.close(), db.close()]);
    }
  });

  it('refuses devices of different sizes', async () => {
    fs.writeFileSync(path.join(dir, 's1'), Buffer.alloc(8192));
    fs.writeFileSync(path.join(dir, 's2'), Buffer.alloc(4096));
    const [d1, d2] = [await BlockDevice.open(path.join(dir, 's1')), await BlockDevice.open(path.join(dir, 's2'))];
    try {
      await assert.rejects(collect(d1, d2, 4096), (e: Error) => e instanceof BisyncError && e.code === ErrorCode.SIZE_MISMATCH && /8192.*4096/.test(e.message));
    } finally {
      await Promise.all([d1.close(), d2.close()]);
    }
  });

  it('copies the differing extents so the devices become identical', async () => {
    const size = (2 << 20) + 1000;
    const a = crypto.randomBytes(size);
    const b = mutate(a, 7);
    fs.writeFileSync(path.join(dir, 'ca'), a);
    fs.writeFileSync(path.join(dir, 'cb'), b);
    const src = await BlockDevice.open(path.join(dir, 'ca'));
    const dst = await BlockDevice.open(path.join(dir, 'cb'), { write: true });
    try {
      const diff = await collect(src, dst, 4096);
      const copied = await copyExtents(src, dst, diff, { batchBytes: 64 << 10 });
      assert.equal(copied, diff.reduce((n, e) => n + e[1], 0));
      await dst.flush();
      assert.deepEqual(await collect(src, dst, 4096), []);
    } finally {
      await Promise.all([src.close(), dst.close()]);
    }
    assert.ok(fs.readFileSync(path.join(dir, 'cb')).equals(a));
  });

  it('copy refuses a read-only destination and extents past the end, writing nothing', async () => {
    const a = crypto.randomBytes(8192);
    const b = Buffer.alloc(8192);
    fs.writeFileSync(path.join(dir, 'ra'), a);
    fs.writeFileSync(path.join(dir, 'rb'), b);
    const src = await BlockDevice.open(path.join(dir, 'ra'));
    const ro = await BlockDevice.open(path.join(dir, 'rb'));
    const rw = await BlockDevice.open(path.join(dir, 'rb'), { write: true });
    try {
      await assert.rejects(copyExtents(src, ro, [[0, 4096]]), { code: ErrorCode.READ_ONLY });
      await assert.rejects(copyExtents(src, rw, [[0, 4096], [4096, 8192]]), /past the end/);
      await assert.rejects(copyExtents(src, rw, [[100, 512]]), /not aligned to 512/);
      // The bad entry comes after a good one in a later batch: still nothing written.
      await assert.rejects(copyExtents(src, rw, [[0, 512], [1024, 512], [2048, 512], [3072, 512], [1 << 20, 4096]], { batchBytes: 512, concurrency: 1 }), /past the end/);
    } finally {
      await Promise.all([src.close(), ro.close(), rw.close()]);
    }
    assert.ok(fs.readFileSync(path.join(dir, 'rb')).equals(b));
  });
});

describe('diffDevices on loop devices', () => {
  const loops: Loop[] = [];
  afterEach(() => loops.splice(0).forEach((l) => l.detach()));

  for (const sectorSize of [512, 4096] as const) {
    it(`matches a byte-by-byte comparison on randomized ${sectorSize}-byte-sector devices`, async function () {
      requires(this, 'root', 'losetup');
      const size = 6 << 20;
      const a = crypto.randomBytes(size);
      const b = mutate(a, sectorSize);
      const [la, lb] = [makeLoop(size, { sectorSize }), makeLoop(size, { sectorSize })];
      loops.push(la, lb);
      fs.writeFileSync(la.file, a);
      fs.writeFileSync(lb.file, b);
      const [da, db] = [await BlockDevice.open(la.device), await BlockDevice.open(lb.device)];
      try {
        for (const bs of [4096, 65536]) assert.deepEqual(await collect(da, db, bs, { batchBytes: 1 << 20 }), naiveDiff(a, b, bs), `block size ${bs}`);
      } finally {
        await Promise.all([da.close(), db.close()]);
      }
    });
  }
});

// BlockDevice on regular files: argument checks, reads and writes at odd sizes,
// errors shaped like SystemError.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice } from '../../lib/device/block-device';
import { BisyncError, ErrorCode, isSystemError } from '../../lib/device/errors';
import { native } from '../../lib/native/binding';
import { requires, tmpDir } from '../helpers/env';

function writeFile(dir: string, name: string, data: Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}

describe('BlockDevice on regular files', () => {
  let dir: string;
  before(() => {
    dir = tmpDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reports size, kind and O_DIRECT of a file whose size is not a multiple of the block size', async () => {
    const p = writeFile(dir, 'odd.img', crypto.randomBytes(3 * 4096 + 1000));
    const dev = await BlockDevice.open(p);
    try {
      assert.equal(dev.size, 3 * 4096 + 1000);
      assert.equal(dev.isBlockDevice, false);
      assert.equal(dev.devno, undefined);
      assert.equal(typeof dev.direct, 'boolean');
      if (!dev.direct) assert.match(dev.directFallback ?? '', /O_DIRECT/);
    } finally {
      await dev.close();
    }
  });

  it('falls back to buffered I/O where O_DIRECT is refused (ramfs), and says so', async function () {
    requires(this, 'root', 'mount');
    const mnt = tmpDir('bisync-ramfs-');
    assert.equal(spawnSync('mount', ['-t', 'ramfs', 'none', mnt]).status, 0, 'mount ramfs');
    try {
      const p = writeFile(mnt, 'f.img', crypto.randomBytes(8192 + 100));
      const dev = await BlockDevice.open(p, { write: true });
      try {
        assert.equal(dev.direct, false);
        assert.match(dev.directFallback ?? '', /O_DIRECT not supported here \(errno 22, EINVAL\); using buffered I\/O/);
        const data = crypto.randomBytes(8192 + 100);
        await dev.write(data, 0);
        assert.ok((await dev.read(0, data.length)).equals(data));
      } finally {
        await dev.close();
      }
    } finally {
      spawnSync('umount', [mnt]);
      fs.rmdirSync(mnt);
    }
  });

  it('reads any range, including unaligned ones and the unaligned tail', async () => {
    const data = crypto.randomBytes(3 * 4096 + 1000);
    const p = writeFile(dir, 'read.img', data);
    const dev = await BlockDevice.open(p);
    try {
      for (const [pos, len] of [[0, data.length], [1, 1], [4095, 2], [4096, 4096], [3 * 4096, 1000], [3 * 4096 + 999, 1], [100, 10000]]) {
        const got = await dev.read(pos, len);
        assert.ok(got.equals(data.subarray(pos, pos + len)), `read(${pos}, ${len})`);
      }
    } finally {
      await dev.close();
    }
  });

  it('refuses reads past the end with a RangeError naming the values', async () => {
    const p = writeFile(dir, 'end.img', Buffer.alloc(8192));
    const dev = await BlockDevice.open(p);
    try {
      await assert.rejects(dev.read(8192, 1), (e: Error) => e instanceof RangeError && /\[8192, 1\].*past the end.*8192 bytes/.test(e.message));
      await assert.rejects(dev.read(4096, 8192), /ends at 12288, past the end/);
      await assert.rejects(dev.read(-1, 10), (e: Error) => e instanceof RangeError && /-1/.test(e.message));
      await assert.rejects(dev.read(0, 0), /length must be a positive integer, got 0/);
      await assert.rejects(dev.read(0.5, 10), /0\.5/);
    } finally {
      await dev.close();
    }
  });

  it('writes sector-aligned data and the unaligned tail, and reads it back', async () => {
    const size = 2 * 4096 + 700;
    const p = writeFile(dir, 'write.img', Buffer.alloc(size));
    const dev = await BlockDevice.open(p, { write: true });
    const want = Buffer.alloc(size);
    try {
      const head = crypto.randomBytes(4096);
      await dev.write(head, 4096);
      head.copy(want, 4096);
      // Ends at the device end: allowed although 700 is not a sector multiple.
      const tail = crypto.randomBytes(512 + 700);
      await dev.write(tail, 2 * 4096 - 512);
      tail.copy(want, 2 * 4096 - 512);
      // Whole pages direct, the rest buffered.
      const pagesAndTail = crypto.randomBytes(4096 + 700);
      await dev.write(pagesAndTail, 4096);
      pagesAndTail.copy(want, 4096);
      assert.ok((await dev.read(0, size)).equals(want));
      // A buffer that is not page-aligned in memory goes through a bounce buffer.
      const unalignedMem = Buffer.concat([Buffer.alloc(3), crypto.randomBytes(512)]).subarray(3);
      await dev.write(unalignedMem, 0);
      unalignedMem.copy(want, 0);
      await dev.flush();
      assert.ok((await dev.read(0, size)).equals(want));
    } finally {
      await dev.close();
    }
    assert.ok(fs.readFileSync(p).equals(want), 'file contents after close');
  });

  it('refuses an unaligned write that does not end at the device end', async () => {
    const p = writeFile(dir, 'unaligned.img', Buffer.alloc(8192));
    const dev = await BlockDevice.open(p, { write: true });
    try {
      await assert.rejects(dev.write(Buffer.alloc(100), 0), /write \[0, 100\] is not aligned to 512 bytes/);
      await assert.rejects(dev.write(Buffer.alloc(512), 100), /write \[100, 512\] is not aligned/);
      assert.ok((await dev.read(0, 8192)).equals(Buffer.alloc(8192)), 'nothing written');
    } finally {
      await dev.close();
    }
  });

  it('zero-out and discard read back as zeros (fallocate on files)', async () => {
    const data = crypto.randomBytes(16 * 4096);
    const p = writeFile(dir, 'zero.img', data);
    const dev = await BlockDevice.open(p, { write: true });
    try {
      await dev.zeroOut(4096, 8192);
      await dev.discard(8 * 4096, 4096);
      const got = await dev.read(0, data.length);
      const want = Buffer.from(data);
      want.fill(0, 4096, 3 * 4096);
      want.fill(0, 8 * 4096, 9 * 4096);
      assert.ok(got.equals(want));
      assert.equal(fs.statSync(p).size, data.length, 'size kept');
    } finally {
      await dev.close();
    }
  });

  it('refuses writes on a device opened read-only, changing nothing', async () => {
    const data = crypto.randomBytes(8192);
    const p = writeFile(dir, 'ro.img', data);
    const dev = await BlockDevice.open(p);
    try {
      for (const op of [() => dev.write(Buffer.alloc(4096), 0), () => dev.zeroOut(0, 4096), () => dev.discard(0, 4096), () => dev.flush(), () => dev.scatter([[0, 4096]], Buffer.alloc(4096))]) {
        await assert.rejects(op(), (e: Error) => e instanceof BisyncError && e.code === ErrorCode.READ_ONLY && e.message.includes(p));
      }
    } finally {
      await dev.close();
    }
    assert.ok(fs.readFileSync(p).equals(data));
  });

  it('use after close is an error naming the device; closing twice is fine', async () => {
    const p = writeFile(dir, 'closed.img', Buffer.alloc(8192));
    const dev = await BlockDevice.open(p, { write: true });
    await dev.close();
    await dev.close();
    assert.equal(dev.closed, true);
    await assert.rejects(dev.read(0, 512), (e: Error) => e instanceof BisyncError && e.code === ErrorCode.DEVICE_CLOSED && e.message.includes(p));
    await assert.rejects(dev.write(Buffer.alloc(512), 0), /closed device/);
    const it = dev.hashExtents([[0, 4096]], 4096);
    await assert.rejects(it.next(), /closed device/);
  });

  it('close waits for reads in flight', async () => {
    const data = crypto.randomBytes(4 << 20);
    const p = writeFile(dir, 'inflight.img', data);
    const dev = await BlockDevice.open(p);
    const reads = [0, 1, 2, 3].map((i) => dev.read(i << 20, 1 << 20));
    await dev.close();
    const got = await Promise.all(reads);
    assert.ok(Buffer.concat(got).equals(data));
  });

  it('native failures look like SystemError: code, errno, syscall, path, message naming the device', async () => {
    const missing = path.join(dir, 'does-not-exist.img');
    await assert.rejects(BlockDevice.open(missing), (e: Error) => {
      assert.ok(isSystemError(e));
      const s = e as Error & { code: string; errno: number; syscall: string; path: string };
      assert.equal(s.code, 'ENOENT');
      assert.equal(s.errno, -2);
      assert.equal(s.syscall, 'stat');
      assert.equal(s.path, missing);
      assert.ok(s.message.includes(missing) && s.message.startsWith('ENOENT'), s.message);
      assert.ok(/block-device\.test/.test(s.stack ?? ''), 'stack points at the caller');
      return true;
    });
    await assert.rejects(BlockDevice.open(dir), (e: Error & { code?: string }) => e.code === 'ENOTBLK' && e.message.includes(dir));
    await assert.rejects(BlockDevice.open(''), TypeError);
  });

  it('hashExtents: per-block XXH3-128 and zero flags, equal to hashing the bytes', async () => {
    const data = crypto.randomBytes(10 * 4096);
    data.fill(0, 2 * 4096, 4 * 4096);
    const p = writeFile(dir, 'hash.img', data);
    const dev = await BlockDevice.open(p);
    try {
      const digests: Buffer[] = [];
      const zero: number[] = [];
      for await (const h of dev.hashExtents([[0, 4 * 4096], [6 * 4096, 4 * 4096]], 4096, { batchBytes: 3 * 4096 })) {
        assert.equal(h.digests.length, 16 * h.zero.length);
        digests.push(h.digests);
        zero.push(...h.zero);
      }
      const all = Buffer.concat(digests);
      const blocksHashed = [0, 1, 2, 3, 6, 7, 8, 9];
      assert.equal(zero.length, blocksHashed.length);
      blocksHashed.forEach((b, i) => {
        const want = native.hashBuffer(data.subarray(b * 4096, (b + 1) * 4096));
        assert.ok(all.subarray(16 * i, 16 * i + 16).equals(want), `digest of block ${b}`);
        assert.equal(zero[i], b === 2 || b === 3 ? 1 : 0, `zero flag of block ${b}`);
      });
      await assert.rejects(dev.hashExtents([[100, 4096]], 4096).next(), /extent \[100, 4096\] is not aligned to 4096/);
      await assert.rejects(dev.hashExtents([[0, 4096]], 1000).next(), /block size must be a power of two.*got 1000/);
    } finally {
      await dev.close();
    }
  });

  it('hashExtents with blocks larger than one native read (4 MiB) hashes whole blocks', async () => {
    const data = crypto.randomBytes((8 << 20) + 4096);
    const p = writeFile(dir, 'hash4m.img', data);
    const dev = await BlockDevice.open(p);
    try {
      const digests: Buffer[] = [];
      for await (const h of dev.hashExtents([[0, data.length]], 4 << 20)) digests.push(h.digests);
      const all = Buffer.concat(digests);
      assert.equal(all.length, 3 * 16);
      for (let i = 0; i < 3; i++) {
        assert.ok(all.subarray(16 * i, 16 * i + 16).equals(native.hashBuffer(data.subarray(i * (4 << 20), (i + 1) * (4 << 20)))), `block ${i}`);
      }
    } finally {
      await dev.close();
    }
  });

  it('the raw binding refuses buffer ranges outside the buffer (memory safety)', () => {
    assert.throws(() => native.read(0, 'x', Buffer.alloc(10), 5, 10, 0), (e: Error) => e instanceof RangeError && /\[5, 10\] is outside a buffer of 10 bytes/.test(e.message));
    assert.throws(() => native.write(0, 'x', Buffer.alloc(10), -1, 4, 0), RangeError);
    assert.throws(() => native.gather(0, 'x', new Float64Array([0, 4096]), Buffer.alloc(10)), /cover 4096 bytes but the buffer holds 10/);
  });

  it('hashBuffer is XXH3-128 (known answer for empty input)', () => {
    // XXH3_128bits("") = 99aa06d3014798d86001c324468d497f (canonical, from the xxHash sanity tests).
    assert.equal(native.hashBuffer(Buffer.alloc(0)).toString('hex'), '99aa06d3014798d86001c324468d497f');
  });

  it('gather and scatter move extents back to back', async () => {
    const data = crypto.randomBytes(8 * 4096);
    const p = writeFile(dir, 'gs.img', data);
    const dev = await BlockDevice.open(p, { write: true });
    try {
      const ext: Array<[number, number]> = [[4096, 4096], [5 * 4096, 8192]];
      const g = await dev.gather(ext);
      assert.ok(g.equals(Buffer.concat([data.subarray(4096, 8192), data.subarray(5 * 4096, 7 * 4096)])));
      const fresh = crypto.randomBytes(3 * 4096);
      await dev.scatter(ext, fresh);
      assert.ok((await dev.read(4096, 4096)).equals(fresh.subarray(0, 4096)));
      assert.ok((await dev.read(5 * 4096, 8192)).equals(fresh.subarray(4096)));
      await assert.rejects(dev.scatter(ext, Buffer.alloc(10)), /scatter data is 10 bytes but the extents cover 12288/);
      await assert.rejects(dev.gather([[100, 512]]), /gather \[100, 512\] is not aligned to 512/);
    } finally {
      await dev.close();
    }
  });
});

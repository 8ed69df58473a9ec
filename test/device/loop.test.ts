// BlockDevice on real loop devices with 512- and 4096-byte logical sectors.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice } from '../../lib/device/block-device';
import { Loop, makeLoop, requires, tmpDir } from '../helpers/env';

const MiB = 1 << 20;

for (const sectorSize of [512, 4096] as const) {
  describe(`BlockDevice on a loop device with ${sectorSize}-byte sectors`, () => {
    let loop: Loop;
    beforeEach(function () {
      requires(this, 'root', 'losetup');
      loop = makeLoop(8 * MiB, { sectorSize });
      fs.writeFileSync(loop.file, crypto.randomBytes(8 * MiB));
    });
    afterEach(() => loop?.detach());

    it('reports block device, sector sizes, devno and loop backing file', async () => {
      const dev = await BlockDevice.open(loop.device);
      try {
        const st = fs.statSync(loop.device);
        assert.equal(dev.isBlockDevice, true);
        assert.equal(dev.size, 8 * MiB);
        assert.equal(dev.logicalSectorSize, sectorSize);
        assert.ok(dev.physicalSectorSize >= sectorSize);
        assert.equal(dev.readOnly, false);
        assert.equal(dev.devno, `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`);
        assert.equal(dev.loopBackingFile, loop.file);
        assert.equal(dev.direct, true);
      } finally {
        await dev.close();
      }
    });

    it('reads aligned and unaligned ranges (bounce buffer) matching the backing file', async () => {
      const data = fs.readFileSync(loop.file);
      const dev = await BlockDevice.open(loop.device);
      try {
        for (const [pos, len] of [[0, MiB], [512, 512], [4096 + 1, 3], [sectorSize, 3 * sectorSize], [8 * MiB - 100, 100]]) {
          assert.ok((await dev.read(pos, len)).equals(data.subarray(pos, pos + len)), `read(${pos}, ${len})`);
        }
        await assert.rejects(dev.read(8 * MiB - 4096, 8192), /past the end/);
      } finally {
        await dev.close();
      }
    });

    it('writes whole sectors and refuses writes not aligned to the logical sector', async () => {
      const dev = await BlockDevice.open(loop.device, { write: true });
      const chunk = crypto.randomBytes(2 * sectorSize);
      try {
        await dev.write(chunk, 3 * sectorSize);
        await dev.flush();
        assert.ok((await dev.read(3 * sectorSize, chunk.length)).equals(chunk));
        if (sectorSize === 4096) await assert.rejects(dev.write(Buffer.alloc(4096), 512), /write \[512, 4096\] is not aligned to 4096 bytes/);
        await assert.rejects(dev.write(Buffer.alloc(100), 0), /is not aligned to/);
      } finally {
        await dev.close();
      }
      assert.ok(fs.readFileSync(loop.file).subarray(3 * sectorSize, 5 * sectorSize).equals(chunk), 'backing file has the write');
    });

    it('zero-out (BLKZEROOUT) and discard (BLKDISCARD) read back as zeros', async () => {
      const dev = await BlockDevice.open(loop.device, { write: true });
      try {
        await dev.zeroOut(MiB, MiB);
        assert.ok((await dev.read(MiB, MiB)).equals(Buffer.alloc(MiB)));
        await dev.discard(4 * MiB, MiB);
        assert.ok((await dev.read(4 * MiB, MiB)).equals(Buffer.alloc(MiB)));
        assert.notDeepEqual(await dev.read(3 * MiB, 4096), Buffer.alloc(4096), 'neighbours untouched');
      } finally {
        await dev.close();
      }
    });

    it('hashes only extents aligned to the logical sector size', async () => {
      const dev = await BlockDevice.open(loop.device);
      try {
        let blocks = 0;
        for await (const h of dev.hashExtents([[0, MiB]], 512)) blocks += h.zero.length;
        assert.equal(blocks, MiB / 512);
        if (sectorSize === 4096) await assert.rejects(dev.hashExtents([[512, 4096]], 512).next(), /extent \[512, 4096\] is not aligned to 4096 bytes/);
      } finally {
        await dev.close();
      }
    });
  });
}

describe('exclusive and read-only block devices', () => {
  let loop: Loop;
  beforeEach(function () {
    requires(this, 'root', 'losetup');
  });
  afterEach(() => loop?.detach());

  it('a second writer gets EBUSY while the device is held with O_EXCL', async () => {
    loop = makeLoop(4 * MiB);
    const first = await BlockDevice.open(loop.device, { write: true });
    try {
      await assert.rejects(BlockDevice.open(loop.device, { write: true }), (e: Error & { code?: string; syscall?: string; path?: string; errno?: number }) => {
        assert.equal(e.code, 'EBUSY');
        assert.equal(e.errno, -16);
        assert.equal(e.syscall, 'open');
        assert.equal(e.path, loop.device);
        assert.ok(e.message.includes(loop.device), e.message);
        return true;
      });
      // Readers are not refused unless they ask for O_EXCL too.
      const reader = await BlockDevice.open(loop.device);
      await reader.close();
      await assert.rejects(BlockDevice.open(loop.device, { exclusive: true }), { code: 'EBUSY' });
    } finally {
      await first.close();
    }
    const again = await BlockDevice.open(loop.device, { write: true });
    await again.close();
  });

  it('a writer gets EBUSY while another process holds the device exclusively', async function () {
    requires(this, 'python3');
    loop = makeLoop(4 * MiB);
    const holder = spawn('python3', ['-c', `import os,sys; os.open(${JSON.stringify(loop.device)}, os.O_RDWR | os.O_EXCL); print("held", flush=True); sys.stdin.read()`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.once('data', () => resolve());
        holder.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
      });
      await assert.rejects(BlockDevice.open(loop.device, { write: true }), { code: 'EBUSY' });
    } finally {
      holder.stdin!.end();
      await new Promise((r) => holder.once('close', r));
    }
  });

  it('a mounted device is refused with EBUSY', async function () {
    requires(this, 'mkfs.ext4', 'mount');
    loop = makeLoop(16 * MiB);
    assert.equal(spawnSync('mkfs.ext4', ['-q', '-F', loop.device]).status, 0);
    const mnt = tmpDir('bisync-mnt-');
    assert.equal(spawnSync('mount', [loop.device, mnt]).status, 0, 'mount');
    try {
      await assert.rejects(BlockDevice.open(loop.device, { write: true }), { code: 'EBUSY' });
    } finally {
      spawnSync('umount', [mnt]);
      fs.rmdirSync(mnt);
    }
  });

  it('a read-only loop device opened for writing fails with EROFS and is not changed', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'ro.img');
    const data = crypto.randomBytes(MiB);
    fs.writeFileSync(file, data);
    const device = spawnSync('losetup', ['--find', '--show', '--read-only', file], { encoding: 'utf8' }).stdout.trim();
    loop = { device, file, detach: () => { spawnSync('losetup', ['-d', device]); fs.rmSync(dir, { recursive: true, force: true }); } };
    const ro = await BlockDevice.open(device);
    assert.equal(ro.readOnly, true);
    await ro.close();
    await assert.rejects(BlockDevice.open(device, { write: true }), (e: Error & { code?: string; path?: string; syscall?: string }) => {
      assert.equal(e.code, 'EROFS');
      assert.equal(e.path, device);
      assert.equal(e.syscall, 'open');
      return true;
    });
    assert.ok(fs.readFileSync(file).equals(data));
  });
});

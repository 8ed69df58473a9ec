// Bad meta-data and bad requests: a clear ERR_BAD_METADATA (or RangeError for
// bad arguments) naming the field and value, and nothing written.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { DrbdMetadata, readMetadataAt } from '../../lib/drbd';
import { BlockDevice } from '../../lib/device/block-device';
import { makeLoop, requires, tmpDir } from '../helpers/env';
import { Case, makeCase } from './cases';
import { prng, readAt, writeAt } from './drbdmeta';

const SEED = Number(process.env.BISYNC_SEED ?? Date.now() % 100000);

function patch(c: Case, write: (b: Buffer) => void): void {
  const sb = readAt(c.target.mdDev, c.model.mdOffset, 4096);
  write(sb);
  writeAt(c.target.mdDev, c.model.mdOffset, sb);
}

async function rejectsRead(c: Case, message: RegExp): Promise<void> {
  await assert.rejects(readMetadataAt(c.backing, { metaDevice: c.metaDevice, index: c.index }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_BAD_METADATA', e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe('drbd meta-data: bad input', function () {
  this.timeout(120000);
  before(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
  });

  it('wrong magic: names the magic and the offset', async function () {
    const dir = tmpDir();
    const l = makeLoop(16 << 20, { dir });
    try {
      await assert.rejects(readMetadataAt(l.device), { code: 'ERR_BAD_METADATA', message: /no DRBD meta-data at '\/dev\/loop\d+' offset 16773120: magic is 0x00000000/ });
      await assert.rejects(readMetadataAt(l.device, { metaDevice: l.device, index: 'flex' }), { code: 'ERR_BAD_METADATA', message: /offset 0: magic is 0x00000000/ });
    } finally {
      l.detach();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('format mismatch: v09 meta-data read as v08', async function () {
    const c = makeCase('v09', 'internal', prng(SEED));
    try {
      await assert.rejects(readMetadataAt(c.backing, { format: 'v08' }), { code: 'ERR_BAD_METADATA', message: /is v09 \(magic 0x8374026d\), not v08/ });
    } finally {
      c.cleanup();
    }
  });

  it('truncated meta-data device: the area does not fit', async function () {
    const c = makeCase('v08', 'flex-external', prng(SEED));
    try {
      // Re-attach the meta-data file shortened to 1 MiB.
      const file = c.loops[1].file;
      fs.truncateSync(file, 1 << 20);
      execFileSync('losetup', ['-c', c.target.mdDev]);
      await rejectsRead(c, /md_size_sect at '\/dev\/loop\d+' offset 0 is \d+: the meta-data area \[0, \d+\) does not fit the 1048576-byte device/);
    } finally {
      c.cleanup();
    }
  });

  it('offsets outside the layout: al_offset and bm_offset', async function () {
    const c = makeCase('v08', 'internal', prng(SEED));
    try {
      patch(c, (b) => b.writeInt32BE(-1000000, 0x44));
      await rejectsRead(c, /al_offset at .* is -1000000 sectors, expected -64 for internal meta-data/);
      patch(c, (b) => {
        b.writeInt32BE(-64, 0x44);
        b.writeInt32BE(-999999999, 0x4c);
      });
      await rejectsRead(c, /bm_offset at .* is -999999999 sectors, expected -\d+/);
    } finally {
      c.cleanup();
    }
  });

  it('an index whose slot is past the end of the meta-data device', async function () {
    const c = makeCase('v08', 1, prng(SEED));
    try {
      await assert.rejects(readMetadataAt(c.backing, { metaDevice: c.metaDevice, index: 5 }), { code: 'ERR_BAD_METADATA', message: /index 5 puts the superblock at 671088640, past the end/ });
    } finally {
      c.cleanup();
    }
  });

  it('la_size larger than the usable space, and a bitmap too small for la_size', async function () {
    const c = makeCase('v08', 'internal', prng(SEED));
    try {
      patch(c, (b) => b.writeBigUInt64BE(BigInt(c.model.bmOffset / 512 + 8), 0));
      await rejectsRead(c, new RegExp(`la_size_sect at .* is ${c.model.bmOffset / 512 + 8} \\(\\d+ bytes\\), more than the ${c.model.bmOffset} usable bytes`));
    } finally {
      c.cleanup();
    }
    // External: the backing device is large (sparse), the 2 MiB meta-data bitmap covers ~64 GiB.
    const dir = tmpDir();
    const big = makeLoop(100 * 2 ** 30, { dir });
    const d = makeCase('v08', 'flex-external', prng(SEED));
    try {
      patch(d, (b) => b.writeBigUInt64BE(BigInt((99 * 2 ** 30) / 512), 0));
      await assert.rejects(readMetadataAt(big.device, { metaDevice: d.metaDevice, index: 'flex' }), { code: 'ERR_BAD_METADATA', message: /bitmap at .* needs \d+ bytes for la_size_sect 207618048 x 1 slot\(s\), but the bitmap area is only \d+ bytes/ });
    } finally {
      d.cleanup();
      big.detach();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('v09 slot table: bitmap_index out of range or used twice, bad bytes per bit', async function () {
    const c = makeCase('v09', 'internal', prng(SEED), { maxPeers: 2, peersWithSlot: 1 });
    const free = [0, 1, 2, 3, 4, 5].filter((n) => n !== c.model.nodeId && c.model.peers[n].bitmapIndex < 0);
    try {
      patch(c, (b) => b.writeInt32BE(7, 0x70 + free[0] * 32 + 20));
      await rejectsRead(c, new RegExp(`peer\\[${free[0]}\\]\\.bitmap_index at .* is 7, expected -1 to 1`));
      patch(c, (b) => b.writeInt32BE(0, 0x70 + free[0] * 32 + 20));
      await rejectsRead(c, /bitmap_index at .* is 0, already used by peer\[\d+\]/);
      patch(c, (b) => {
        b.writeInt32BE(-1, 0x70 + free[0] * 32 + 20);
        b.writeUInt32BE(3000, 0x50);
      });
      await rejectsRead(c, /bm_bytes_per_bit at .* is 3000, expected a power of two from 4096 to 1048576/);
    } finally {
      c.cleanup();
    }
  });

  it('bad updates change nothing', async function () {
    const c = makeCase('v09', 'internal', prng(SEED), { maxPeers: 4, peersWithSlot: 2 });
    const before = readAt(c.target.mdDev, c.model.bmOffset, c.model.mdOffset + 4096 - c.model.bmOffset);
    try {
      const ro = await readMetadataAt(c.backing);
      try {
        await assert.rejects(ro.md.update({ clean: true }), { code: 'ERR_DEVICE_READ_ONLY' });
      } finally {
        await ro.close();
      }
      const h = await readMetadataAt(c.backing, {}, { write: true });
      try {
        const peer = c.model.peers.findIndex((p) => p?.bitmapIndex === 0);
        await assert.rejects(h.md.update({ uuids: { current: 'not-hex' } }), { code: 'ERR_BAD_METADATA', message: /UUID must be 1 to 16 hex digits, got "not-hex"/ });
        await assert.rejects(h.md.update({ uuids: { bitmap: '1' } }), { code: 'ERR_BAD_METADATA', message: /no default peer/ });
        await assert.rejects(h.md.update({ peerNodeId: peer, uuids: { history: Array(33).fill('1') } }), /uuids.history for v09 must have up to 32 entries/);
        await assert.rejects(h.md.update({ peerNodeId: peer, setBits: [[h.md.dataSize - 4096, 8192]] }), /setBits extent \[\d+, 8192\] ends past the data size/);
        await assert.rejects(h.md.update({ peerNodeId: c.model.nodeId, clearBitmap: true }), /is this node's own id/);
        await assert.rejects(h.md.update({ flags: { consistent: 'yes' as unknown as boolean } }), /flag consistent must be a boolean, got "yes"/);
      } finally {
        await h.close();
      }
      assert.ok(readAt(c.target.mdDev, c.model.bmOffset, before.length).equals(before), 'meta-data unchanged');
    } finally {
      c.cleanup();
    }
  });

  it('writes only through an exclusive open: a second writer gets EBUSY', async function () {
    const c = makeCase('v08', 'internal', prng(SEED));
    const h = await readMetadataAt(c.backing, {}, { write: true });
    try {
      await assert.rejects(readMetadataAt(c.backing, {}, { write: true }), { code: 'EBUSY' });
    } finally {
      await h.close();
      c.cleanup();
    }
  });

  it('refuses an external index without a meta-data device', async function () {
    const c = makeCase('v08', 'internal', prng(SEED));
    const dev = await BlockDevice.open(c.backing);
    try {
      await assert.rejects(DrbdMetadata.read(dev, { index: 'flex' }), /meta-data index flex needs a meta-data device/);
      await assert.rejects(DrbdMetadata.read(dev, { index: 256 }), /index must be 'internal', 'flex' or an integer 0 to 255, got 256/);
    } finally {
      await dev.close();
      c.cleanup();
    }
  });
});

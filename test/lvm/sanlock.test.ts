// Delta-lease records of oVirt's `ids` LV against sanlock itself: `sanlock
// direct init` writes the lockspace, `sanlock direct read_leader` checks a
// record we wrote (its checksum included) and prints its fields back.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { deltaLeaseChecksum, DELTA_DISK_MAGIC, parseDeltaLease } from '../../lib/lvm';
import { requires, tmpDir } from '../helpers/env';

describe('lvm: sanlock delta leases', () => {
  let dir = '';
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A lockspace made by sanlock in a 1 MiB file. */
  function lockspace(name: string): string {
    const file = path.join(dir, 'ids');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    execFileSync('sanlock', ['direct', 'init', '-s', `${name}:0:${file}:0`], { stdio: 'ignore' });
    return file;
  }

  it('reads the records sanlock direct init writes', function () {
    requires(this, 'sanlock');
    const file = lockspace('5e1f6c2a-9d3b');
    const bytes = fs.readFileSync(file);
    const r = parseDeltaLease(bytes.subarray(0, 512))!;
    assert.ok(r, 'a delta lease in sector 0');
    assert.equal(r.magic, DELTA_DISK_MAGIC);
    assert.equal(r.version >>> 16, 3);
    assert.equal(r.lockspace, '5e1f6c2a-9d3b');
    assert.equal(r.sectorSize, 512);
    assert.equal(r.hostId, 0);
    assert.equal(r.timestamp, 0);
  });

  it('a renewed record we write is one sanlock reads back with the same fields', function () {
    requires(this, 'sanlock');
    const file = lockspace('5e1f6c2a-9d3b');
    const fd = fs.openSync(file, 'r+');
    const sector = Buffer.alloc(512);
    fs.readSync(fd, sector, 0, 512, 512);
    // Host 2 holds its id (generation 7) and renewed at t=123456.
    sector.writeBigUInt64LE(2n, 32);
    sector.writeBigUInt64LE(7n, 40);
    sector.write('host-b-uuid', 104, 'latin1');
    sector.writeBigUInt64LE(123456n, 152);
    sector.writeUInt32LE(deltaLeaseChecksum(sector), 168);
    fs.writeSync(fd, sector, 0, 512, 512);
    fs.closeSync(fd);
    const out = execFileSync('sanlock', ['direct', 'read_leader', '-s', `5e1f6c2a-9d3b:2:${file}:0`], { encoding: 'utf8' });
    // sanlock verifies the checksum: -229 (SANLK_LEADER_CHECKSUM) would mean ours is wrong.
    assert.match(out, /read_leader done 0\n/);
    assert.match(out, /owner_id 2\n/);
    assert.match(out, /timestamp 123456\n/);
    assert.match(out, new RegExp(`checksum 0x${sector.readUInt32LE(168).toString(16)}\\n`));
    const r = parseDeltaLease(sector)!;
    assert.deepEqual([r.hostId, r.generation, r.resource, r.timestamp], [2, 7, 'host-b-uuid', 123456]);
  });

  it('refuses what cannot be merged by timestamp: wrong magic, torn record, short sector, paxos leader', () => {
    const s = Buffer.alloc(512);
    s.writeUInt32LE(DELTA_DISK_MAGIC, 0);
    s.writeUInt32LE(0x00030004, 4);
    s.writeBigUInt64LE(99n, 152);
    s.writeUInt32LE(deltaLeaseChecksum(s), 168);
    assert.equal(parseDeltaLease(s)!.timestamp, 99);
    const torn = Buffer.from(s);
    torn[152] = 100;
    assert.equal(parseDeltaLease(torn), null);
    assert.equal(parseDeltaLease(s.subarray(0, 100)), null);
    const paxos = Buffer.from(s);
    paxos.writeUInt32LE(0x06152010, 0);
    paxos.writeUInt32LE(deltaLeaseChecksum(paxos), 168);
    assert.equal(parseDeltaLease(paxos), null);
    assert.equal(parseDeltaLease(Buffer.alloc(512)), null);
  });
});

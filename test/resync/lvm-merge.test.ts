// Merges of devices holding an LVM2 volume group, made with the real lvm2
// tools on loop devices (activation off) with DRBD meta-data by createMetadata(), read back with drbdmeta:
// LVs written by one node, by both, LVM metadata changed on one or both nodes,
// and an oVirt-shaped domain whose `ids` LV both nodes wrote.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { deltaLeaseChecksum, DELTA_DISK_MAGIC } from '../../lib/lvm';
import type { LvmDoc } from '../../lib/plan/lvm';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { Merge, MergeOptions } from '../../lib/resync/merge';
import { restoreArchive } from '../../lib/resync/restore';
import { cli, cliJson } from '../helpers/cli';
import { requires, tmpDir } from '../helpers/env';
import { LvmPair, Side } from '../helpers/lvm-pair';
import { drbdmetaView } from '../helpers/pair';

const MiB = 1 << 20;
const SIZE = 128 * MiB;

async function merge(p: LvmPair, dir: string, opts: MergeOptions = {}) {
  const local = await LocalEndpoint.open(p.local, { write: !opts.dryRun });
  const peer = await LocalEndpoint.open(p.peer, { write: !opts.dryRun });
  try {
    return await new Merge(local, peer, { journal: path.join(dir, 'journal.json'), ...opts }).run();
  } finally {
    await Promise.all([local.close(), peer.close()]);
  }
}

function planJson(p: LvmPair, ...args: string[]): { status: number | null; doc: { lvm: LvmDoc; blockers: string[]; notes: string[] } } {
  return cliJson(['plan', '--device', p.local, '--peer-device', p.peer, ...args]);
}

/** What real lvm2 says of a node's device: its LVs (name → size) and whether vgck accepts the VG. */
function lvmSays(p: LvmPair, side: Side): Record<string, number> {
  p.lvm(side, 'vgck', p.vg);
  const rows = JSON.parse(p.lvm(side, 'lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size', p.vg)) as { report: Array<{ lv: Array<{ lv_name: string; lv_size: string }> }> };
  return Object.fromEntries(rows.report[0].lv.map((r) => [r.lv_name, Number(r.lv_size)]));
}

function assertFinalized(p: LvmPair): void {
  const [a, b] = [drbdmetaView(p.local), drbdmetaView(p.peer)];
  assert.equal(a.current, b.current, 'same current UUID');
  assert.equal(a.bitsSet + b.bitsSet, 0, 'bitmaps cleared');
}

/** A sanlock delta-lease record for host `hostId` renewed at `timestamp`. */
function lease(hostId: number, timestamp: number): Buffer {
  const s = Buffer.alloc(512);
  s.writeUInt32LE(DELTA_DISK_MAGIC, 0);
  s.writeUInt32LE(0x00030001, 4);
  s.writeUInt32LE(512, 12);
  s.writeBigUInt64LE(2000n, 16);
  s.writeBigUInt64LE(2000n, 24);
  s.writeBigUInt64LE(BigInt(hostId), 32);
  s.writeBigUInt64LE(1n, 40);
  s.write('sd-uuid', 56, 'latin1');
  s.write(`host-${hostId}`, 104, 'latin1');
  s.writeBigUInt64LE(BigInt(timestamp), 152);
  s.writeUInt32LE(deltaLeaseChecksum(s), 168);
  return s;
}

describe('merge with LVM (real lvm2 on loop devices, DRBD meta-data read back with drbdmeta)', function () {
  let p: LvmPair | undefined;
  let dir = '';
  beforeEach(function () {
    requires(this, 'root', 'losetup', 'lvm', 'drbdmeta');
    dir = tmpDir('bisync-lvm-');
  });
  afterEach(() => {
    p?.close();
    p = undefined;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const three = (pair: LvmPair): Promise<void> => pair.create([], [], [['vmA', '16m'], ['vmB', '16m'], ['vmC', '16m']]);

  it('(a) each node wrote only its own LVs: merged, each LV equal to its writer\'s version on both', async () => {
    p = await LvmPair.open(SIZE);
    await three(p);
    const a = await p.writeLv('local', 'vmA', 0, Buffer.alloc(64 * 1024, 0xa1));
    await p.writeLv('local', 'vmA', 8 * MiB, Buffer.alloc(4096, 0xa2));
    const b = await p.writeLv('peer', 'vmB', 4096, Buffer.alloc(8192, 0xb1));
    await p.split();
    const plan = planJson(p);
    assert.equal(plan.status, 0);
    const lvs = Object.fromEntries(plan.doc.lvm.lvs.map((l) => [l.name, l]));
    assert.deepEqual([lvs.vmA.verdict, lvs.vmB.verdict, lvs.vmC.verdict], ['local-only', 'peer-only', 'unchanged']);
    assert.deepEqual(lvs.vmA.changedBytes, { local: 68 * 1024, peer: 0 });
    assert.equal(plan.doc.lvm.metadata.changedOn, 'none');
    const wantA = await p.readLv('local', 'vmA');
    const wantB = await p.readLv('peer', 'vmB');
    const r = await merge(p, dir);
    assert.equal(r.outcome, 'merged', r.message);
    for (const side of ['local', 'peer'] as const) {
      assert.ok((await p.readLv(side, 'vmA')).equals(wantA), `vmA on ${side} is the local node's`);
      assert.ok((await p.readLv(side, 'vmB')).equals(wantB), `vmB on ${side} is the peer's`);
      assert.ok((await p.readLv(side, 'vmA')).subarray(0, a.length).equals(a));
      assert.ok((await p.readLv(side, 'vmB')).subarray(4096, 4096 + b.length).equals(b));
    }
    assert.ok(p.data('local').equals(p.data('peer')));
    assertFinalized(p);
  });

  it('(b) an LV written on both nodes in different blocks: refused, nothing changed; --lv NAME=peer takes the peer\'s; restore-archive brings this node\'s back', async () => {
    p = await LvmPair.open(SIZE);
    await three(p);
    await p.writeLv('local', 'vmA', 0, Buffer.alloc(4096, 0x11));
    await p.writeLv('peer', 'vmA', MiB, Buffer.alloc(4096, 0x22));
    await p.writeLv('peer', 'vmB', 0, Buffer.alloc(4096, 0x33));
    await p.split();
    const before = { local: p.data('local'), peer: p.data('peer') };
    const localA = await p.readLv('local', 'vmA');
    const peerA = await p.readLv('peer', 'vmA');

    const refused = cliJson<{ outcome: string; lvm: LvmDoc }>(['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(dir, 'j.json'), '--on-conflict', 'prefer-local', '--archive', path.join(dir, 'x')]);
    assert.equal(refused.status, 1, refused.stderr);
    assert.equal(refused.doc.outcome, 'conflicts');
    assert.deepEqual(refused.doc.lvm.lvConflicts, ['vmA'], '--on-conflict never resolves an LV conflict');
    assert.ok(p.data('local').equals(before.local) && p.data('peer').equals(before.peer), 'nothing written');

    // Killed after archiving what it overwrites: the journal holds the winner, a resume cannot switch it.
    const archive = path.join(dir, 'archive');
    const args = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(dir, 'journal.json'), '--archive', archive];
    assert.equal(cli([...args, '--lv', 'vmA=peer'], { env: { DRBD_BISYNC_FAILPOINT: 'after-archive' } }).signal, 'SIGKILL');
    const switched = cli([...args, '--lv', 'vmA=local']);
    assert.equal(switched.status, 1);
    assert.match(switched.stderr, /was started with --lv vmA=peer; resume it with the same LVM resolutions/);
    const r = await merge(p, dir, { lvWinners: { vmA: 'peer' }, archive });
    assert.equal(r.outcome, 'merged', r.message);
    assert.equal(r.resumed, true);
    assert.equal(r.lvm?.lvs.find((l) => l.name === 'vmA')?.resolution, 'peer');
    for (const side of ['local', 'peer'] as const) assert.ok((await p.readLv(side, 'vmA')).equals(peerA), `vmA on ${side} is byte for byte the peer's`);
    assertFinalized(p);

    await restoreArchive(archive, p.local, { side: 'local' });
    assert.ok((await p.readLv('local', 'vmA')).subarray(0, 4096).equals(localA.subarray(0, 4096)), 'restore-archive brought this node\'s block back');
  });

  it('(c) LVM metadata changed on one node only (lvcreate, lvextend): lvs and vgck see it on both devices', async () => {
    p = await LvmPair.open(SIZE);
    await three(p);
    p.lvm('local', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmD', '-L', '8m', p.vg);
    p.lvm('local', 'lvextend', '-y', '-L', '+8m', `${p.vg}/vmA`);
    const d = await p.writeLv('local', 'vmD', 0, Buffer.alloc(8192, 0xdd));
    await p.writeLv('peer', 'vmB', 0, Buffer.alloc(4096, 0xbb));
    await p.split();
    const plan = planJson(p);
    assert.equal(plan.status, 0, plan.doc.blockers.join('\n'));
    assert.equal(plan.doc.lvm.metadata.changedOn, 'local');
    assert.deepEqual(plan.doc.lvm.metadata.changes.local.map((c) => `${c.kind} ${c.lv}`).sort(), ['created vmD', 'resized vmA']);
    const r = await merge(p, dir);
    assert.equal(r.outcome, 'merged', r.message);
    const want = lvmSays(p, 'local');
    assert.equal(want.vmD, 8 * MiB);
    assert.equal(want.vmA, 24 * MiB);
    assert.deepEqual(lvmSays(p, 'peer'), want, 'the peer\'s lvm2 sees the same LVs');
    assert.ok((await p.readLv('peer', 'vmD')).subarray(0, d.length).equals(d));
    assert.ok(p.data('local').equals(p.data('peer')));
    assertFinalized(p);
  });

  it('(d) LVM metadata changed on both nodes: refused with each node\'s changes and the extent conflicts; --vg-metadata with --drop-lv ends with identical metadata vgck accepts', async () => {
    p = await LvmPair.open(SIZE);
    await three(p);
    // Both allocate the same free extents to a new LV of their own and write it.
    p.lvm('local', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmD', '-L', '8m', p.vg);
    p.lvm('peer', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmE', '-L', '8m', p.vg);
    await p.writeLv('local', 'vmD', 0, Buffer.alloc(4096, 0xdd));
    await p.writeLv('peer', 'vmE', 0, Buffer.alloc(4096, 0xee));
    await p.writeLv('peer', 'vmB', 0, Buffer.alloc(4096, 0xbb));
    await p.split();
    const plan = planJson(p);
    assert.equal(plan.status, 1);
    const m = plan.doc.lvm.metadata;
    assert.equal(m.changedOn, 'both');
    assert.deepEqual(m.changes.local.map((c) => `${c.kind} ${c.lv}`), ['created vmD']);
    assert.deepEqual(m.changes.peer.map((c) => `${c.kind} ${c.lv}`), ['created vmE']);
    assert.ok(m.extentConflicts.some(([, , l, q]) => l === 'vmD' && q === 'vmE'), JSON.stringify(m.extentConflicts));
    const before = { local: p.data('local'), peer: p.data('peer') };
    const archive = path.join(dir, 'archive');
    const needsDrop = await merge(p, dir, { vgMetadataWinner: 'local', archive });
    assert.equal(needsDrop.outcome, 'conflicts');
    assert.match(needsDrop.message, /--drop-lv vmE/);
    assert.ok(p.data('local').equals(before.local) && p.data('peer').equals(before.peer), 'nothing written');

    const r = await merge(p, dir, { vgMetadataWinner: 'local', dropLvs: ['vmE'], archive });
    assert.equal(r.outcome, 'merged', r.message);
    assert.equal(r.lvm?.lvs.find((l) => l.name === 'vmE')?.resolution, 'dropped');
    const want = lvmSays(p, 'local');
    assert.deepEqual(lvmSays(p, 'peer'), want);
    assert.ok('vmD' in want && !('vmE' in want));
    assert.ok(p.data('local').equals(p.data('peer')), 'identical data areas, metadata included');
    assert.equal((await p.readLv('local', 'vmB'))[0], 0xbb, 'the peer\'s write to vmB was kept');
    assertFinalized(p);
  });

  it('(e) an oVirt-shaped domain where both nodes wrote ids: merged per sector, no conflict', async () => {
    p = await LvmPair.open(SIZE);
    const img = '5e1ffa5a-0000-4000-8000-00000000000a';
    await p.create([], ['--addtag', 'RHAT_storage_domain', '--addtag', 'MDT_VERSION=5'], [
      ['metadata', '8m'], ['ids', '8m'], ['inbox', '8m'], ['outbox', '8m'],
      ['7a01b2c3-0000-4000-8000-000000000001', '16m', '--addtag', `IU_${img}`, '--addtag', 'PU_00000000-0000-0000-0000-000000000000', '--addtag', 'MD_1'],
    ]);
    // Hosts 1 and 2 share the first 4 KiB block: host 1 ran on this node, host 2 on the peer.
    await p.writeLv('local', 'ids', 0, Buffer.concat([lease(1, 5000), lease(2, 100)]));
    await p.writeLv('peer', 'ids', 0, Buffer.concat([lease(1, 100), lease(2, 6000)]));
    await p.writeLv('local', '7a01b2c3-0000-4000-8000-000000000001', 0, Buffer.alloc(4096, 0x77));
    await p.split();
    const doc = planJson(p);
    assert.equal(doc.status, 0, doc.doc.blockers.join('\n'));
    const ids = doc.doc.lvm.lvs.find((l) => l.name === 'ids')!;
    assert.equal(ids.ovirt?.role, 'ids');
    assert.equal(ids.verdict, 'both');
    assert.equal(ids.resolution, 'sector-merge');
    assert.deepEqual(doc.doc.lvm.lvConflicts, []);
    const vol = doc.doc.lvm.lvs.find((l) => l.ovirt?.role === 'volume')!;
    assert.equal(vol.ovirt?.image, img);
    const r = await merge(p, dir, { archive: path.join(dir, 'archive') });
    assert.equal(r.outcome, 'merged', r.message);
    for (const side of ['local', 'peer'] as const) {
      const bytes = await p.readLv(side, 'ids');
      assert.ok(bytes.subarray(0, 512).equals(lease(1, 5000)), `host 1's newer record on ${side}`);
      assert.ok(bytes.subarray(512, 1024).equals(lease(2, 6000)), `host 2's newer record on ${side}`);
    }
    assert.ok(p.data('local').equals(p.data('peer')));
    assertFinalized(p);
  });
});

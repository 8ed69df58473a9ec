// The online merge's LVM rules on real lvm2 volume groups (loop devices,
// activation off, DRBD meta-data by drbdmeta): the survivor is live, and which
// of its LVs are open comes from a device-mapper open-count table (this test
// machine has no device-mapper, so the table is the test's: "vmB is open").
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { Merge, MergeOptions } from '../../lib/resync/merge';
import { plan as makePlan } from '../../lib/plan/plan';
import { checkOnlineWrites, dmName, parseDmInfo } from '../../lib/resync/online-gate';
import { requires, tmpDir } from '../helpers/env';
import { LvmPair } from '../helpers/lvm-pair';
import { markAlHot } from '../helpers/al';

const MiB = 1 << 20;
const SIZE = 128 * MiB;

describe('online merge with LVM (live survivor; LVs open on it)', function () {
  let p: LvmPair | undefined;
  let dir = '';
  beforeEach(function () {
    requires(this, 'root', 'losetup', 'lvm', 'drbdmeta');
    dir = tmpDir('bisync-online-lvm-');
  });
  afterEach(() => {
    p?.close();
    p = undefined;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the online merge with `open` as this node's device-mapper table (LV name → open count). */
  /** `duringCopy` may change `open` once the gate let the copy start (something opening an LV meanwhile). */
  async function online(pair: LvmPair, open: Record<string, number>, opts: MergeOptions = {}, duringCopy?: (open: Record<string, number>) => void) {
    const local = await LocalEndpoint.open(pair.local, { write: true, live: { drbdDevice: pair.local } });
    const peer = await LocalEndpoint.open(pair.peer, { write: true });
    const notes: string[] = [];
    const table = async (): Promise<Map<string, number>> => new Map(Object.entries(open).map(([lv, n]) => [dmName(pair.vg, lv), n]));
    try {
      const r = await new Merge(local, peer, {
        journal: path.join(dir, 'journal.json'),
        online: true,
        openCounts: table,
        beforeLocalWrites: async (pl, extents, afterCopy) => {
          const n = await checkOnlineWrites(local, peer, pl.lvm, extents, { noLvm: false, openCounts: table, afterCopy });
          if (!afterCopy) notes.push(...n);
          if (!afterCopy) duringCopy?.(open);
        },
        ...opts,
      }).run();
      return { r, notes };
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
  }

  async function disjoint(pair: LvmPair): Promise<unknown> {
    await pair.create([], [], [['vmA', '16m'], ['vmB', '16m'], ['vm-C', '16m']]);
    return Promise.all([
      pair.writeLv('local', 'vmA', 0, Buffer.alloc(64 * 1024, 0xa1)),
      pair.writeLv('peer', 'vmB', 4096, Buffer.alloc(8192, 0xb1)),
      pair.writeLv('peer', 'vm-C', 0, Buffer.alloc(4096, 0xc1)),
    ]);
  }

  it('refuses to write into an LV the peer changed that is open here, naming it; nothing written', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    await p.split();
    const before = p.data('local');
    await assert.rejects(online(p, { vmA: 3, vmB: 1, 'vm-C': 0 }), (e: Error & { code?: string; hint?: string }) =>
      e.code === 'ERR_REFUSED' && /LV\(s\) of VG \S+ that are open on this node: vmB: 8192 bytes, open 1 time\(s\); nothing written/.test(e.message) && /--lv NAME=local/.test(e.hint ?? ''));
    assert.ok(p.data('local').equals(before), 'nothing written on this node');
  });

  it('copies into LVs that are active but not open here and into inactive ones (this node\'s open LV untouched)', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    await p.split();
    const wantB = await p.readLv('peer', 'vmB');
    const wantC = await p.readLv('peer', 'vm-C');
    const mineA = await p.readLv('local', 'vmA');
    const { r, notes } = await online(p, { vmA: 2, vmB: 0 });
    assert.equal(r.outcome, 'merged', r.message);
    assert.deepEqual(notes, []);
    assert.ok((await p.readLv('local', 'vmB')).equals(wantB));
    assert.ok((await p.readLv('local', 'vm-C')).equals(wantC));
    assert.ok((await p.readLv('local', 'vmA')).equals(mineA), 'this node\'s own LV as it was');
  });

  it('an LV opened here while the peer\'s changes were copied into it stops the merge before the hand-back; closed again, a rerun finishes', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    await p.split();
    const wantB = await p.readLv('peer', 'vmB');
    await assert.rejects(online(p, { vmA: 2, vmB: 0 }, {}, (open) => (open.vmB = 1)), (e: Error & { code?: string; hint?: string }) =>
      e.code === 'ERR_VERIFY' && /stopped before the hand-back: .*copied into are open on this node now: vmB: 8192 bytes, open 1 time\(s\)/.test(e.message) && /resumes from its journal.*--lv NAME=local\|peer/.test(e.hint ?? ''));
    assert.ok(fs.existsSync(path.join(dir, 'journal.json')), 'the journal stays for the rerun');
    const { r } = await online(p, { vmA: 2, vmB: 0 });
    assert.equal(r.outcome, 'merged', r.message);
    assert.ok((await p.readLv('local', 'vmB')).equals(wantB));
  });

  it('after the copy: an LV the peer created and this node opened meanwhile, or a gate that fails, holds the hand-back back as ERR_VERIFY', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    p.lvm('peer', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmNew', '-L', '8m', p.vg);
    await p.writeLv('peer', 'vmNew', 0, Buffer.alloc(8192, 0xe1));
    await p.split();
    // vmNew exists here only once the peer's metadata was copied: activated and opened during the copy.
    await assert.rejects(online(p, { vmA: 1 }, {}, (open) => (open.vmNew = 1)), (e: Error & { code?: string }) =>
      e.code === 'ERR_VERIFY' && /open on this node now: vmNew: \d+ bytes, open 1 time\(s\)/.test(e.message));

    p.close();
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    await p.split();
    let calls = 0;
    const failing = async (): Promise<Map<string, number>> => {
      if (++calls > 1) throw Object.assign(new Error('dmsetup: command failed'), { code: 'ENOENT' });
      return new Map();
    };
    const local = await LocalEndpoint.open(p.local, { write: true, live: { drbdDevice: p.local } });
    const peer = await LocalEndpoint.open(p.peer, { write: true });
    try {
      await assert.rejects(new Merge(local, peer, {
        journal: path.join(dir, 'journal-2.json'), // the first half's stopped merge left its journal
        online: true,
        openCounts: async () => new Map(),
        beforeLocalWrites: async (pl, extents, afterCopy) => void await checkOnlineWrites(local, peer, pl.lvm, extents, { noLvm: false, openCounts: failing, afterCopy }),
      }).run(), (e: Error & { code?: string }) => e.code === 'ERR_VERIFY' && /^online merge stopped before the hand-back: dmsetup: command failed/.test(e.message));
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
  });

  it('an open LV the peer changed: --lv NAME=local keeps this node\'s, archives the peer\'s, and copies the rest', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    await p.split();
    const mineB = await p.readLv('local', 'vmB');
    const wantC = await p.readLv('peer', 'vm-C');
    const { r } = await online(p, { vmB: 1 }, { lvWinners: { vmB: 'local' }, archive: path.join(dir, 'archive') });
    assert.equal(r.outcome, 'merged', r.message);
    assert.ok((await p.readLv('local', 'vmB')).equals(mineB), 'vmB here unchanged');
    assert.ok((await p.readLv('local', 'vm-C')).equals(wantC));
    assert.ok(r.lvmResolution.archivedBytes >= 8192, `the peer's vmB blocks archived (${r.lvmResolution.archivedBytes})`);
    assert.ok(fs.readdirSync(path.join(dir, 'archive')).length > 0);
  });

  it('LVM metadata changed by the peer only: copied, with how this node\'s LVM re-reads it; changed on both: refused', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    p.lvm('peer', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmNew', '-L', '8m', p.vg);
    await p.split();
    const { r, notes } = await online(p, { vmA: 1 });
    assert.equal(r.outcome, 'merged', r.message);
    assert.equal(notes.length, 1);
    assert.match(notes[0], /LVM metadata of VG .* is copied here; lvm2 2.03 commands read it from the disk/);
    assert.match(p.lvm('local', 'lvs', '--noheadings', '-o', 'lv_name', p.vg), /vmNew/, 'this node\'s LVM sees the peer\'s new LV');

    p.close();
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    p.lvm('peer', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmNew', '-L', '8m', p.vg);
    p.lvm('local', 'lvcreate', '-an', '-Zn', '-y', '-n', 'vmMine', '-L', '8m', p.vg);
    await p.split();
    const before = p.data('local');
    // The plan itself already blocks (offline, --vg-metadata would decide); the gate would refuse too.
    const both = await online(p, {}).then(({ r }) => `${r.outcome}: ${r.message}`, (e: Error) => e.message);
    assert.match(both, /^conflicts: .*metadata|both nodes changed the LVM metadata of VG/, both);
    assert.ok(p.data('local').equals(before));
  });

  it('an active LV here whose layout the peer changed is refused', async () => {
    p = await LvmPair.open(SIZE);
    await disjoint(p);
    p.lvm('peer', 'lvextend', '-y', '-L', '+8m', `${p.vg}/vmB`);
    await p.split();
    await assert.rejects(online(p, { vmB: 0 }), /changes LV\(s\) active on this node: vmB \(moved or resized\)/);
  });

  it('settles the live activity log\'s blocks in doubt per LV: the peer\'s where the LV is not open here and its bitmap shows no write here', async () => {
    const setup = async (localWritesVmB: boolean) => {
      const pair = await LvmPair.open(SIZE);
      await pair.create([], [], [['vmA', '16m'], ['vmB', '16m']]);
      await pair.writeLv('peer', 'vmA', 1 * MiB, Buffer.alloc(4096, 0xa2)); // VM A also ran on the peer for a while
      await pair.writeLv('peer', 'vmB', 4096, Buffer.alloc(8192, 0xb1));
      if (localWritesVmB) await pair.writeLv('local', 'vmB', 12 * MiB, Buffer.alloc(4096, 0xb9));
      await pair.split();
      // This node's AL is hot over the 4 MiB extents of both peer writes: its bitmap does not say it wrote there.
      const at = async (lv: string, off: number) => Math.floor(((await pair.extentsOf('local', lv))[0][0] + off) / (4 * MiB));
      markAlHot(pair.local, [await at('vmA', 1 * MiB), await at('vmB', 4096)]);
      return pair;
    };
    const lv = (r: { plan: unknown }, name: string) => (r.plan as any).lvm.lvs.find((x: any) => x.name === name);

    // vmA open here: its doubt stays this node's, so the peer's write there makes vmA a conflict; vmB is the peer's.
    p = await setup(false);
    const before = p.data('local');
    const { r: refused } = await online(p, { vmA: 1, vmB: 0 });
    assert.equal(refused.outcome, 'conflicts', refused.message);
    assert.deepEqual((refused.plan as any).lvm.lvConflicts, ['vmA']);
    assert.equal(lv(refused, 'vmB').verdict, 'peer-only');
    assert.match((refused.plan as any).notes.join('\n'), /hot activity-log extents .* \(vmB\): counted as unchanged here/);
    assert.ok(p.data('local').equals(before), 'nothing written on the refusal');
    // Without the open counts (no facts) every block in doubt is this node's: both LVs conflict.
    const local = await LocalEndpoint.open(p.local, { live: { drbdDevice: p.local } });
    const peer = await LocalEndpoint.open(p.peer);
    try {
      const noFacts = await makePlan(local, peer);
      assert.deepEqual(noFacts.lvm?.lvConflicts, ['vmA', 'vmB']);
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
    // Neither open: both are the peer's and are copied here.
    const wantA = await p.readLv('peer', 'vmA');
    const wantB = await p.readLv('peer', 'vmB');
    const { r } = await online(p, { vmA: 0, vmB: 0 });
    assert.equal(r.outcome, 'merged', r.message);
    assert.ok((await p.readLv('local', 'vmA')).equals(wantA));
    assert.ok((await p.readLv('local', 'vmB')).equals(wantB));
    p.close();

    // vmB not open, but this node's bitmap shows a write in it: its doubt stays this node's, a conflict.
    p = await setup(true);
    const { r: mine } = await online(p, { vmA: 0, vmB: 0 });
    assert.equal(mine.outcome, 'conflicts', mine.message);
    assert.deepEqual((mine.plan as any).lvm.lvConflicts, ['vmB']);
  });

  it('parses dmsetup\'s open counts (names with dashes doubled)', () => {
    assert.equal(dmName('vg-0', 'vm-C'), 'vg--0-vm--C');
    assert.deepEqual([...parseDmInfo('vg0-vmA|2\nvg--0-vm--C|0\n')], [['vg0-vmA', 2], ['vg--0-vm--C', 0]]);
    assert.equal(parseDmInfo('No devices found\n').size, 0);
    assert.throws(() => parseDmInfo('garbage\n'), /unexpected `dmsetup info` line "garbage"/);
  });
});

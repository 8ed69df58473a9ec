// The online merge on loop devices: the local node is "live" (its meta-data read
// without O_EXCL, its data written through a second, non-exclusive descriptor, as
// through the Primary's /dev/drbdN). Only the peer's changes are copied here,
// the AL's hot extents count as the survivor's (the superset DRBD guarantees),
// blocks in doubt are conflicts, the safety gate refuses before anything is
// written, and an interrupted copy is resumed.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Extent } from '../../lib/device/extent';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { Merge, MergeOptions } from '../../lib/resync/merge';
import { archiveMerges } from '../../lib/resync/restore';
import { lvmLabelSector } from '../../lib/lvm/label';
import { checkOnlineWrites } from '../../lib/resync/online-gate';
import { RoleWatch, checkSurvivor, waitForSync } from '../../lib/resync/online';
import { writeAt } from '../drbd/drbdmeta';
import { markAlHot } from '../helpers/al';
import { splitBrainStates } from '../../scripts/split-brain';
import { requires } from '../helpers/env';
import { Pair, drbdmetaView, overlay, readRange, setupPair } from '../helpers/pair';

const SIZE = 32 << 20;
const MiB = 1 << 20;

/** Opens local as the live survivor (same loop device for meta-data and data) and peer normally. */
async function online(p: Pair, opts: MergeOptions = {}, gate: { noLvm: boolean } | null = { noLvm: true }) {
  const local = await LocalEndpoint.open(p.local, { write: !opts.dryRun, live: { drbdDevice: p.local } });
  const peer = await LocalEndpoint.open(p.peer, { write: !opts.dryRun });
  try {
    return await new Merge(local, peer, {
      journal: path.join(p.dir, 'journal.json'),
      online: true,
      beforeLocalWrites: gate ? async (pl, extents) => void await checkOnlineWrites(local, peer, pl.lvm, extents, gate) : undefined,
      // --no-lvm is also the plan's plain block mode (the CLI passes both).
      ...(gate?.noLvm ? { lvm: false } : {}),
      ...opts,
    }).run();
  } finally {
    await Promise.all([local.close(), peer.close()]);
  }
}

const total = (xs: Extent[]): number => xs.reduce((s, e) => s + e[1], 0);

describe('online merge (live survivor on loop devices)', function () {
  let p: Pair | undefined;
  beforeEach(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
  });
  afterEach(() => {
    p?.cleanup();
    p = undefined;
  });

  it('copies only the peer\'s changes into the live node, leaves this node\'s to DRBD and writes no meta-data', async () => {
    const a: Extent[] = [[1 * MiB, 64 << 10], [9 * MiB + 4096, 8192]];
    const b: Extent[] = [[5 * MiB, 128 << 10], [20 * MiB, 4096], [28 * MiB, 1 * MiB]];
    p = await setupPair(SIZE, { ...splitBrainStates(a, b), commonData: true }, { loop: true });
    const mdBefore = [drbdmetaView(p.local), drbdmetaView(p.peer)];
    const r = await online(p);
    assert.equal(r.outcome, 'merged', r.message);
    assert.equal(r.movedToLocalBytes, total(b));
    assert.equal(r.movedToPeerBytes, 0);
    assert.equal(r.finalized, null);
    assert.deepEqual(r.verification, { mode: 'changed', checkedBytes: total(b), ok: true });
    assert.ok(readRange(p.local, 0, p.dataSize).equals(overlay(p.before.local, p.before.peer, b)), 'local = its own data + the peer\'s changes');
    assert.ok(readRange(p.peer, 0, p.dataSize).equals(p.before.peer), 'the peer is untouched (DRBD resyncs it)');
    assert.deepEqual([drbdmetaView(p.local), drbdmetaView(p.peer)], mdBefore, 'meta-data of both nodes unchanged');
  });

  it('counts the live AL\'s hot extents as this node\'s: a peer block there with other bytes is a conflict, with the same bytes none', async () => {
    const b: Extent[] = [[4 * MiB + 8192, 4096], [4 * MiB + 65536, 4096], [16 * MiB, 4096]];
    p = await setupPair(SIZE, { ...splitBrainStates([[20 * MiB, 4096]], b), commonData: true }, { loop: true });
    markAlHot(p.local, [1]); // 4-8 MiB: this node may have written there; its bitmap does not say so
    // One of the peer's blocks in that extent has the same bytes on this node: no doubt about it.
    writeAt(p.local, b[1][0], readRange(p.peer, b[1][0], 4096));
    const refused = await online(p);
    assert.equal(refused.outcome, 'conflicts', refused.message);
    assert.deepEqual((refused.plan as { conflicts: Extent[] }).conflicts, [b[0]]);
    assert.equal((refused.plan as { identicalOverlapBytes: number }).identicalOverlapBytes, 4096);
    assert.ok(readRange(p.local, 0, p.dataSize).equals(overlay(p.before.local, p.before.peer, [b[1]])), 'nothing written on the refusal');

    // prefer-peer: the peer's block wins here, this node's is archived first; the copy covers the rest.
    const archive = path.join(p.dir, 'archive');
    const r = await online(p, { onConflict: 'prefer-peer', archive });
    assert.equal(r.outcome, 'merged', r.message);
    assert.equal(r.conflictResolution.archivedBytes, 4096);
    assert.ok(readRange(p.local, 0, p.dataSize).equals(overlay(p.before.local, p.before.peer, b)));
    assert.ok(fs.readdirSync(archive).length > 0, 'archive written');
  });

  it('prefer-local online archives the peer\'s side of a conflict and writes nothing on either node', async () => {
    const b: Extent[] = [[4 * MiB + 8192, 4096], [16 * MiB, 4096]];
    p = await setupPair(SIZE, { ...splitBrainStates([[20 * MiB, 4096]], b), commonData: true }, { loop: true });
    markAlHot(p.local, [1]);
    const archive = path.join(p.dir, 'archive');
    const r = await online(p, { onConflict: 'prefer-local', archive });
    assert.equal(r.outcome, 'merged', r.message);
    assert.equal(r.conflictResolution.archivedBytes, 4096);
    assert.equal(r.movedToLocalBytes, 4096);
    assert.ok(readRange(p.local, 0, p.dataSize).equals(overlay(p.before.local, p.before.peer, [b[1]])), 'only the undisputed block came here');
    assert.ok(readRange(p.peer, 0, p.dataSize).equals(p.before.peer), 'the peer is left to DRBD\'s resync');
    const merges = archiveMerges(archive);
    assert.equal(merges.length, 1);
    assert.ok(merges[0].id, 'the archived conflict carries the merge identity, so restore-archive can restore it');
  });

  it('refuses without --no-lvm, and any LVM physical volume even with it, before writing anything', async () => {
    const b: Extent[] = [[5 * MiB, 8192]];
    p = await setupPair(SIZE, { ...splitBrainStates([[1 * MiB, 4096]], b), commonData: true }, { loop: true });
    await assert.rejects(online(p, {}, { noLvm: false }), (e: Error & { code?: string; hint?: string }) =>
      e.code === 'ERR_REFUSED' && /has no LVM.*8192 bytes the peer changed/.test(e.message) && /--no-lvm/.test(e.hint ?? ''));
    const label = Buffer.alloc(512);
    label.write('LABELONE', 0, 'latin1');
    label.write('LVM2 001', 24, 'latin1');
    writeAt(p.local, 512, label);
    assert.equal(lvmLabelSector(readRange(p.local, 0, 4096)), 1);
    const before = readRange(p.local, 0, p.dataSize);
    await assert.rejects(online(p, {}, { noLvm: true }), /--no-lvm, but .* carries an LVM2 physical volume label \(sector 1\)/);
    // Without --no-lvm the LVM reader itself refuses this half-written label.
    await assert.rejects(online(p, {}, { noLvm: false }), /LVM label_header/);
    assert.ok(readRange(p.local, 0, p.dataSize).equals(before), 'nothing written');
  });

  it('an online copy killed mid-transfer and run again ends as an uninterrupted one (journal, archive)', async function () {
    const b: Extent[] = Array.from({ length: 24 }, (_, i): Extent => [(i + 2) * MiB, 256 << 10]);
    p = await setupPair(SIZE, { ...splitBrainStates([[1 * MiB, 4096]], b), commonData: true }, { loop: true });
    const script = `
      const { LocalEndpoint } = require('./lib/resync/local-endpoint');
      const { Merge } = require('./lib/resync/merge');
      (async () => {
        const local = await LocalEndpoint.open(${JSON.stringify(p.local)}, { write: true, live: { drbdDevice: ${JSON.stringify(p.local)} } });
        const peer = await LocalEndpoint.open(${JSON.stringify(p.peer)}, { write: true });
        const r = await new Merge(local, peer, { journal: ${JSON.stringify(path.join(p.dir, 'journal.json'))}, online: true, batchBytes: 256 << 10, concurrency: 1 }).run();
        await local.close(); await peer.close();
        process.stdout.write(JSON.stringify(r));
      })().catch((e) => { console.error(e); process.exit(2); });`;
    const runIt = (failpoint?: string) => spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: path.resolve(__dirname, '../..'), encoding: 'utf8', env: { ...process.env, DRBD_BISYNC_FAILPOINT: failpoint ?? '' },
    });
    const killed = runIt('mid-transfer');
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.ok(fs.existsSync(path.join(p.dir, 'journal.json')), 'the journal survived the kill');
    const done = runIt();
    assert.equal(done.status, 0, done.stderr);
    const r = JSON.parse(done.stdout);
    assert.equal(r.outcome, 'merged');
    assert.equal(r.verification.ok, true);
    assert.ok(readRange(p.local, 0, p.dataSize).equals(overlay(p.before.local, p.before.peer, b)));
    assert.ok(!fs.existsSync(path.join(p.dir, 'journal.json')), 'journal removed at the end');
  });

  it('the survivor must be Primary, UpToDate and not connected; a role sample other than Primary is remembered', () => {
    const s = { name: 'r0', role: 'Primary', disk: 'UpToDate', connection: 'StandAlone' } as Parameters<typeof checkSurvivor>[0];
    checkSurvivor(s);
    assert.throws(() => checkSurvivor({ ...s, role: 'Secondary' }), /'r0' on this node is Secondary, not Primary/);
    assert.throws(() => checkSurvivor({ ...s, connection: 'SyncSource' }), /'r0' on this node is SyncSource with its peer/);
    assert.throws(() => checkSurvivor({ ...s, disk: 'Outdated' }), /disk state Outdated/);
    const w = new RoleWatch();
    w.note(s);
    assert.equal(w.stayedPrimary, true);
    w.note({ ...s, role: 'Secondary' });
    assert.equal(w.stayedPrimary, false);
  });
});

describe('online hand-back wait', function () {
  type Status = Parameters<typeof checkSurvivor>[0];
  const base = { name: 'r0', role: 'Primary', disk: 'UpToDate', peerDisk: 'DUnknown', connection: 'StandAlone', outOfSyncBytes: 4096 } as Status;

  /** Replays samples, one per 10 ms of a fake clock. */
  function replay(samples: Array<Partial<Status>>): { read: () => Promise<Status>; now: () => number } {
    let i = -1;
    return { read: async () => ({ ...base, ...samples[Math.min(++i, samples.length - 1)] }), now: () => 1000 + 10 * Math.max(i, 0) };
  }

  it('notes when the peer is first connected (resync still running) apart from when both are UpToDate with nothing out of sync', async () => {
    const r = replay([{}, { connection: 'WFConnection' }, { connection: 'WFBitMapS', peerDisk: 'Inconsistent' },
      { connection: 'SyncSource', peerDisk: 'Inconsistent' }, { connection: 'Connected', peerDisk: 'UpToDate', outOfSyncBytes: 4096 },
      { connection: 'Connected', peerDisk: 'UpToDate', outOfSyncBytes: 0 }]);
    const roles = new RoleWatch();
    const w = await waitForSync('r0', r.read, roles, 1000, { timeoutMs: 60_000, pollMs: 0 }, r.now);
    assert.equal(w.connectedMs, 20, 'the third sample (WFBitMapS) is the first connected one');
    assert.equal(w.syncedMs, 50, 'the sixth sample is Connected UpToDate/UpToDate, oos 0');
    assert.equal(w.final.outOfSyncBytes, 0);
    assert.equal(roles.stayedPrimary, true);
  });

  it('times out naming the resource and its last state', async () => {
    const r = replay([{ connection: 'SyncSource', peerDisk: 'Inconsistent' }]);
    await assert.rejects(waitForSync('r0', r.read, new RoleWatch(), 1000, { timeoutMs: 25, pollMs: 0 }, r.now),
      /'r0' did not reach Connected UpToDate\/UpToDate .*now SyncSource UpToDate\/Inconsistent, 4096 bytes out of sync/);
  });
});

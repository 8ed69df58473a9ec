// End to end: `drbd-bisync status` and `watch` inside the lab's two DRBD 8.4
// guests, against the real kernel. In each state the lab produces, the netlink
// answer must equal /proc/drbd and `drbdsetup status` read in the same guest.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Guest, Lab } from '../../scripts/drbd-lab/lab';
import { RESOURCE, configure, createMd, drbdadm, splitBrain, up, waitState, waitSynced } from '../../scripts/drbd-lab/drbd';
import { parseProcDrbd } from '../../lib/status/proc-drbd';
import type { DrbdStatus, ResourceStatus } from '../../lib/status/types';
import type { WatchEvent } from '../../lib/status/watch';
import { CLI, describeCli, guestCli, sharedLab, skipWithoutLab } from './lab-helpers';

const summary = (r: { role: string; peerRole: string; connection: string; disk: string; peerDisk: string }) =>
  `${r.role}/${r.peerRole} ${r.connection} ${r.disk}/${r.peerDisk}`;

/** status --json in the guest, with /proc/drbd and drbdsetup status read right after. */
async function statusOn(g: Guest, args: string[] = []): Promise<{ st: DrbdStatus; proc: string; drbdsetup: string }> {
  const r = await guestCli(g, ['status', '--json', ...args]);
  assert.equal(r.status, 0, describeCli(r));
  assert.ok(r.json, `not one JSON document: ${r.stdout}`);
  const proc = await g.ok('cat /proc/drbd');
  const drbdsetup = await g.ok('drbdsetup status --verbose --statistics');
  return { st: r.json, proc, drbdsetup };
}

function expectMatchesProc(g: Guest, st: DrbdStatus, proc: string, drbdsetup: string, expected: string): ResourceStatus {
  assert.equal(st.source, 'netlink');
  assert.equal(st.api, 1);
  assert.equal(st.resources.length, 1, JSON.stringify(st));
  const r = st.resources[0];
  const [d] = parseProcDrbd(proc).devices;
  assert.equal(r.name, RESOURCE);
  assert.equal(r.minor, d.minor);
  assert.equal(summary(r), expected, `${g.name}: netlink says ${summary(r)}`);
  assert.equal(summary(d), expected, `${g.name}: /proc/drbd says ${summary(d)}`);
  if (!/Sync/.test(r.connection)) assert.equal(r.outOfSyncBytes, d.outOfSyncBytes, `${g.name}: out of sync`);
  assert.match(drbdsetup, new RegExp(`disk:${r.disk}\\b`));
  if (r.disk !== 'Diskless') assert.match(r.uuids!.current, /^[0-9A-F]{16}$/);
  return r;
}

describe('e2e: drbd-bisync status/watch on DRBD 8.4 (qemu lab)', function () {
  let lab: Lab;

  before(async function () {
    skipWithoutLab(this);
    // The guests the merge scenarios use (booted once per run): take r0 down
    // in whatever state they left it (or none, when this file runs alone) and
    // start from fresh meta-data, so the initial sync of the 64 MiB disks at
    // 512 KiB/s is slow enough to be seen in progress.
    lab = await sharedLab();
    await Promise.all(lab.nodes.map((g) => g.sh(drbdadm(`down ${RESOURCE}`))));
    await configure(lab, '512K');
    await createMd(lab);
  });

  it('WFConnection, then SyncSource/SyncTarget with progress: netlink equals /proc/drbd on both nodes', async () => {
    await up(lab.a);
    await waitState(lab.a, (s) => s.cs === 'WFConnection', 'WFConnection');
    const w = await statusOn(lab.a);
    expectMatchesProc(lab.a, w.st, w.proc, w.drbdsetup, 'Secondary/Unknown WFConnection Inconsistent/DUnknown');
    await up(lab.b);
    await waitState(lab.a, (s) => s.cs === 'Connected', 'Connected');
    await lab.a.ok(drbdadm(`-- --overwrite-data-of-peer primary ${RESOURCE}`));
    await waitState(lab.a, (s) => s.cs === 'SyncSource' && /sync'ed:\s+[1-9]/.test(s.raw), 'SyncSource with progress');
    const src = await statusOn(lab.a);
    const r = expectMatchesProc(lab.a, src.st, src.proc, src.drbdsetup, 'Primary/Secondary SyncSource UpToDate/Inconsistent');
    const p = parseProcDrbd(src.proc).devices[0].syncProgress!;
    assert.ok(r.syncProgress && r.syncProgress.percent > 0 && r.syncProgress.percent < 100, JSON.stringify(r.syncProgress));
    assert.ok(p.percent >= r.syncProgress.percent, `/proc/drbd (read later) ${p.percent}% < netlink ${r.syncProgress.percent}%`);
    assert.equal(r.syncProgress.totalBytes, p.totalBytes);
    const tgt = await statusOn(lab.b);
    expectMatchesProc(lab.b, tgt.st, tgt.proc, tgt.drbdsetup, 'Secondary/Primary SyncTarget Inconsistent/UpToDate');
  });

  it('Connected UpToDate, Diskless and peer-Diskless; proc and events2 sources agree with netlink', async () => {
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`disk-options --resync-rate=200M ${RESOURCE}`))));
    await waitSynced(lab);
    const c = await statusOn(lab.a);
    expectMatchesProc(lab.a, c.st, c.proc, c.drbdsetup, 'Primary/Secondary Connected UpToDate/UpToDate');
    for (const source of ['proc', 'events2']) {
      const alt = await guestCli(lab.a, ['status', '--json', '--source', source]);
      assert.equal(alt.status, 0, describeCli(alt));
      assert.equal(alt.json.source, source);
      assert.deepEqual(alt.json.resources.map((r: ResourceStatus) => [r.name, summary(r), r.outOfSyncBytes]), [[RESOURCE, 'Primary/Secondary Connected UpToDate/UpToDate', 0]]);
    }
    await lab.b.ok(drbdadm(`detach ${RESOURCE}`));
    await waitState(lab.a, (s) => s.ds === 'UpToDate/Diskless', 'peer Diskless');
    const dl = await statusOn(lab.b);
    expectMatchesProc(lab.b, dl.st, dl.proc, dl.drbdsetup, 'Secondary/Primary Connected Diskless/UpToDate');
    const pdl = await statusOn(lab.a);
    expectMatchesProc(lab.a, pdl.st, pdl.proc, pdl.drbdsetup, 'Primary/Secondary Connected UpToDate/Diskless');
    await lab.b.ok(drbdadm(`attach ${RESOURCE}`));
    await waitSynced(lab);
  });

  it('watch --json reports the split brain as it happens; status then says so and suggests plan', async () => {
    // Both nodes primary while disconnected, a write on each.
    await splitBrain(lab);
    await Promise.all(lab.nodes.map((g) => g.ok(`dd if=/dev/urandom of=/dev/drbd0 bs=4096 count=4 seek=${g === lab.a ? 10 : 5000} oflag=direct status=none`)));
    const before = await statusOn(lab.a);
    const r0 = expectMatchesProc(lab.a, before.st, before.proc, before.drbdsetup, 'Primary/Unknown StandAlone UpToDate/DUnknown');
    assert.equal(r0.splitBrain, false, 'an administrative disconnect is not a split brain');

    const out = lab.a.hostPath('watch.jsonl');
    fs.rmSync(out, { force: true });
    const watcher = lab.a.start(`node ${CLI} watch --json > /run/lab/watch.jsonl 2>/run/lab/watch.err & echo $! > /run/lab/watch.pid; wait $!; echo exit $?`);
    // Node starts slowly over 9p without KVM: wait for the initial "exists" line.
    for (const t0 = Date.now(); !(fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('\n')); ) {
      if (Date.now() - t0 > 120_000) throw new Error(`watch printed nothing in 120 s: ${fs.readFileSync(lab.a.hostPath('watch.err'), 'utf8')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`secondary ${RESOURCE}`))));
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`connect ${RESOURCE}`))));
    await waitState(lab.a, (s) => s.cs === 'StandAlone', 'StandAlone after split brain', 60_000);
    await new Promise((r) => setTimeout(r, 3_000));
    await lab.a.ok('kill -INT $(cat /run/lab/watch.pid)');
    const done = await lab.a.wait(watcher, 60_000);
    assert.match(done.out, /exit 0/, `watch: ${done.out} ${fs.readFileSync(lab.a.hostPath('watch.err'), 'utf8')}\n${fs.readFileSync(out, 'utf8')}`);
    const events: WatchEvent[] = fs.readFileSync(lab.a.hostPath('watch.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(events[0].type, 'exists');
    const states = events.map((e) => (e.resource as ResourceStatus).connection);
    // The watcher may see only some of the quick steps of the attempt.
    assert.ok(['WFConnection', 'WFReportParams', 'Connected'].some((c) => states.includes(c)), `no reconnect seen: ${states.join(' ')}`);
    const last = events[events.length - 1].resource as ResourceStatus;
    assert.equal(last.connection, 'StandAlone');
    assert.equal(last.splitBrain, true, JSON.stringify(last));

    for (const g of lab.nodes) {
      const sb = await statusOn(g);
      const r = expectMatchesProc(g, sb.st, sb.proc, sb.drbdsetup, 'Secondary/Unknown StandAlone UpToDate/DUnknown');
      assert.equal(r.splitBrain, true);
      assert.equal(r.splitBrainEvidence, 'kernel-log');
      const human = await guestCli(g, ['status', RESOURCE]);
      assert.equal(human.status, 0, describeCli(human));
      assert.match(human.stdout, /SPLIT BRAIN/);
      assert.match(human.stdout, /drbd-bisync plan --device \/dev\/vda/);
    }
    const unknown = await guestCli(lab.a, ['status', 'nope', '--json']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.json.error.message, /'nope' is not configured/);
  });

  it('watch --source events2 and --source proc follow a reconnect attempt too', async () => {
    const started: Record<string, string> = {};
    for (const source of ['events2', 'proc']) {
      fs.rmSync(lab.a.hostPath(`watch-${source}.jsonl`), { force: true });
      started[source] = lab.a.start(
        `node ${CLI} watch --json --source ${source} --interval 200 > /run/lab/watch-${source}.jsonl 2>/run/lab/watch-${source}.err & echo $! > /run/lab/watch-${source}.pid; wait $!; echo exit $?`,
      );
    }
    const lines = (source: string): WatchEvent[] => {
      const f = lab.a.hostPath(`watch-${source}.jsonl`);
      return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    };
    for (const t0 = Date.now(); !(lines('events2').length && lines('proc').length); ) {
      if (Date.now() - t0 > 120_000) throw new Error(`watchers printed nothing: ${fs.readFileSync(lab.a.hostPath('watch-events2.err'), 'utf8')} ${fs.readFileSync(lab.a.hostPath('watch-proc.err'), 'utf8')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await lab.a.ok(drbdadm(`connect ${RESOURCE}`)); // the peer stays StandAlone: nodea waits in WFConnection
    await waitState(lab.a, (s) => s.cs === 'WFConnection', 'WFConnection');
    await new Promise((r) => setTimeout(r, 2_000));
    for (const source of ['events2', 'proc']) {
      await lab.a.ok(`kill -INT $(cat /run/lab/watch-${source}.pid)`);
      const done = await lab.a.wait(started[source], 60_000);
      assert.match(done.out, /exit 0/, `${source}: ${done.out} ${fs.readFileSync(lab.a.hostPath(`watch-${source}.err`), 'utf8')}`);
      const evs = lines(source);
      assert.deepEqual([evs[0].type, evs[0].source, (evs[0].resource as ResourceStatus).connection], ['exists', source, 'StandAlone']);
      const last = evs[evs.length - 1].resource as ResourceStatus;
      assert.deepEqual([last.name, last.connection, last.splitBrain], [RESOURCE, 'WFConnection', false], `${source}: ${JSON.stringify(evs)}`);
    }
  });
});

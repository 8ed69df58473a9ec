// End to end: two real DRBD 8.4 nodes under qemu. Each scenario makes a split
// brain (or an outage, or a crash), repairs it with drbd-bisync, and checks from
// inside the guests that DRBD reconnects UpToDate/UpToDate with nothing to
// resync: the kernel log of both nodes (uuid_compare() rule 40, no "Began
// resync"), /proc/drbd's counters, drbdadm, and reads through /dev/drbd0.
// Where a scenario lets DRBD decide on UUIDs (outage, split brain), the
// kernel's decision is checked against the project's classifier.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab } from '../../scripts/drbd-lab/lab';
import {
  BACKING, DRBD_DEVICE, DrbdState, RESOURCE, configure, down, drbdadm, procDrbd, resetToSynced, splitBrain, up, waitState, waitSynced,
} from '../../scripts/drbd-lab/drbd';
import type { GenerationUuids } from '../../lib/plan/classify';
import {
  CLI, MiB, Write, connectLogs, contentOf, copyDisk, describeCli, expectKernelAgrees, expectNothingResynced, expectWritesOnBoth,
  fileSha256, guestCli, hashesOn, hostCli, inspectUuids, markBoth, readingDrbd, sha256, sharedLab, skipWithoutLab, withHostLoops, writeAll,
} from './lab-helpers';
import { createVg, lvHashScript, lvPath, lvm, parseLvHashes, withVgActive } from '../../scripts/drbd-lab/lvm';

const timings: Array<[string, number]> = [];
const comparison: string[] = [];

/** What a scenario that merged must hand the reconnect check. */
interface Merged {
  /** The merge report's finalized.currentUuid. */
  finalized: string;
  /** Both nodes' UUIDs as inspect read them after the merge, before `up`. */
  uuids: [GenerationUuids, GenerationUuids];
}

describe('e2e: drbd-bisync against two DRBD 8.4 nodes under qemu', function () {
  let lab: Lab | undefined;
  const t0 = Date.now();

  before(async function () {
    skipWithoutLab(this);
    const t = Date.now();
    lab = await sharedLab();
    timings.push(['kernel + initramfs + boot both guests (once per run)', Date.now() - t]);
    await configure(lab); // each scenario starts with resetToSynced
  });

  after(function () {
    if (!lab) return;
    timings.push(['whole merge suite', Date.now() - t0]);
    console.log('\n  Timings:');
    for (const [what, ms] of timings) console.log(`    ${(what.length > 56 ? `${what.slice(0, 55)}…` : what).padEnd(58)} ${(ms / 1000).toFixed(1).padStart(6)} s`);
    if (comparison.length) console.log(`\n  DRBD alone vs drbd-bisync:\n${comparison.map((l) => `    ${l}`).join('\n')}`);
  });

  /** Runs a scenario on a lab reset to Connected UpToDate/UpToDate, and times it. */
  function scenario(title: string, body: (lab: Lab) => Promise<void>): void {
    it(title, async function () {
      const t = Date.now();
      try {
        await resetToSynced(lab!, copyDisk);
        await body(lab!);
      } finally {
        timings.push([title, Date.now() - t]);
      }
    });
  }

  const psk = 'ab'.repeat(32);
  function writePsk(l: Lab): string {
    for (const g of l.nodes) fs.writeFileSync(g.hostPath('psk'), psk, { mode: 0o600 });
    return '/run/lab/psk';
  }

  /** A's and B's writes in different 4 MiB extents (so not even the AL overlaps). */
  const disjoint = (l: Lab, tag: string): Write[] => [
    { node: l.a, tag: `${tag}-a1`, offset: 1 * MiB, length: 64 * 1024 },
    { node: l.a, tag: `${tag}-a2`, offset: 20 * MiB + 8192, length: 4096 },
    { node: l.b, tag: `${tag}-b1`, offset: 8 * MiB, length: 128 * 1024 },
    { node: l.b, tag: `${tag}-b2`, offset: 40 * MiB + 4096, length: 8192 },
  ];

  async function splitBrainWith(l: Lab, writes: Write[]): Promise<void> {
    await splitBrain(l);
    await writeAll(writes);
    await Promise.all(l.nodes.map((g) => down(g)));
  }

  /** Both uuids from inspect on the host-attached backing devices (the resource is down). */
  const inspectBoth = (devA: string, devB: string): [GenerationUuids, GenerationUuids] => [inspectUuids(devA), inspectUuids(devB)];

  /**
   * Marks both kernel logs, brings both nodes up and waits until each has
   * finished its handshake (left Unconnected/WFConnection/WFReportParams).
   * Returns the mark and the first state each node showed after it.
   */
  async function upBoth(l: Lab): Promise<{ mark: string; first: DrbdState[] }> {
    const mark = await markBoth(l, 'up');
    await Promise.all(l.nodes.map((g) => up(g)));
    const first = await Promise.all(l.nodes.map((g) =>
      waitState(g, (s) => !['Unconnected', 'WFConnection', 'WFReportParams'].includes(s.cs), 'the end of the handshake')));
    return { mark, first };
  }

  /**
   * Up on both nodes, then Connected UpToDate/UpToDate with every write on both.
   * After a merge (merged given): the kernel decided "in sync" by rule 40 on
   * both nodes, as the classifier does on the UUIDs inspect read; nothing was
   * out of sync at connect; no resync began; no byte moved or was written;
   * both nodes carry the merge's finalized current UUID.
   */
  async function upAndExpectSynced(l: Lab, writes: Write[], merged?: Merged, started?: { mark: string; first: DrbdState[] }): Promise<void> {
    const { mark, first } = started ?? await upBoth(l);
    if (merged) {
      first.forEach((s, i) => assert.deepEqual([s.cs, s.ds, s.oos], ['Connected', 'UpToDate/UpToDate', 0], `${l.nodes[i].name} right after the handshake:\n${s.raw}`));
      await expectKernelAgrees(l, mark, merged.uuids);
    }
    const states = await waitSynced(l);
    for (const [i, s] of states.entries()) {
      assert.equal(s.cs, 'Connected', `${l.nodes[i].name}: ${s.raw}`);
      assert.equal(s.ds, 'UpToDate/UpToDate');
      assert.equal(s.oos, 0);
    }
    // The same through drbdadm and drbdsetup; after a sync both share one current UUID.
    const gis: string[] = [];
    for (const g of l.nodes) {
      const out = await g.ok(`${drbdadm(`cstate ${RESOURCE}`)}; ${drbdadm(`dstate ${RESOURCE}`)}; /lib/drbd/drbdsetup-84 get-gi 0`);
      const [cstate, dstate, gi] = out.trim().split('\n');
      assert.equal(cstate, 'Connected', `drbdadm cstate on ${g.name}`);
      assert.equal(dstate, 'UpToDate/UpToDate', `drbdadm dstate on ${g.name}`);
      gis.push(gi);
    }
    const [ua, ub] = gis.map((gi) => gi.split(':'));
    assert.equal(ub[0], ua[0], `current UUIDs differ: nodea ${gis[0]}, nodeb ${gis[1]}`);
    if (merged) assert.equal(ua[0], merged.finalized, `get-gi current UUID vs the merge's finalized.currentUuid: ${gis.join(' / ')}`);
    await expectWritesOnBoth(l, writes, true);
    if (merged) await expectNothingResynced(l, mark, merged.finalized);
  }

  /** A merge report's finalized UUID, asserting the merge merged. */
  function finalizedOf(m: { json?: any }): string {
    assert.equal(m.json?.outcome, 'merged', JSON.stringify(m.json));
    assert.match(m.json.finalized?.currentUuid ?? '', /^[0-9A-F]{16}$/, JSON.stringify(m.json.finalized));
    return m.json.finalized.currentUuid;
  }

  scenario('1a. disjoint writes on both sides, merged on the host over both disk images', async (l) => {
    const writes = disjoint(l, 's1a');
    await splitBrainWith(l, writes);
    const journal = path.join(l.dir, 'journal-s1a.json');
    const merged = await withHostLoops(l, (devA, devB): Merged => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 0, describeCli(p));
      assert.equal(p.json.verdict, 'split-brain', describeCli(p));
      assert.equal(p.json.conflictBytes, 0);
      assert.equal(p.json.toPeerBytes, (64 + 4) * 1024);
      assert.equal(p.json.toLocalBytes, (128 + 8) * 1024);
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', journal, '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
      return { finalized: finalizedOf(m), uuids: inspectBoth(devA, devB) };
    });
    await upAndExpectSynced(l, writes, merged);
    comparison.push(`disjoint split brain, drbd-bisync merge: uuid_compare()=0 by rule 40 on both, no resync, 0 bytes resynced, all ${writes.length} writes of both nodes on both`);
  });

  scenario('1b. disjoint writes on both sides, merged inside the guests over the guest link (serve + merge)', async (l) => {
    const writes = disjoint(l, 's1b');
    await splitBrainWith(l, writes);
    const pskFile = writePsk(l);
    const serve = l.b.start(`exec node ${CLI} serve --device ${BACKING} --listen ${l.b.ip}:7790 --psk-file ${pskFile} --once`);
    await l.b.waitOutput(serve, /serving /);
    const m = await guestCli(l.a, ['merge', '--device', BACKING, '--peer', `${l.b.ip}:7790`, '--psk-file', pskFile,
      '--journal', '/run/lab/journal-s1b.json', '--yes', '--json']);
    const served = await l.b.wait(serve, 60_000);
    assert.equal(m.status, 0, describeCli(m));
    assert.equal(served.rc, 0, `serve: ${served.out}`);
    const finalized = finalizedOf(m);
    await upAndExpectSynced(l, writes, { finalized, uuids: await withHostLoops(l, inspectBoth) });
  });

  scenario('2. overlapping different writes: refused unchanged, then prefer-local with an archive, then restore-archive', async (l) => {
    const writes: Write[] = [
      { node: l.a, tag: 's2-a-x', offset: 4 * MiB, length: 8192 },
      { node: l.a, tag: 's2-a-y', offset: 12 * MiB, length: 4096 },
      { node: l.b, tag: 's2-b-x', offset: 4 * MiB, length: 8192 },
      { node: l.b, tag: 's2-b-z', offset: 32 * MiB, length: 4096 },
    ];
    await splitBrainWith(l, writes);
    const before = l.nodes.map((g) => fileSha256(g.disk));
    const archive = l.a.hostPath('archive');
    const merged = await withHostLoops(l, (devA, devB): Merged => {
      const refused = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s2.json'), '--yes', '--json']);
      assert.equal(refused.status, 1, describeCli(refused));
      assert.deepEqual(l.nodes.map((g) => fileSha256(g.disk)), before, 'both disks byte for byte unchanged after the refusal');
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--on-conflict', 'prefer-local', '--archive', archive,
        '--journal', path.join(l.dir, 'journal-s2b.json'), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
      return { finalized: finalizedOf(m), uuids: inspectBoth(devA, devB) };
    });
    const winners = writes.filter((w) => w.tag !== 's2-b-x');
    await upAndExpectSynced(l, winners, merged);
    // The loser's (nodeb's) blocks come back through DRBD, so both nodes get them.
    await l.a.ok(drbdadm(`primary ${RESOURCE}`));
    const r = await guestCli(l.a, ['restore-archive', '--archive', l.a.guestPath('archive'), '--device', '/dev/drbd0', '--yes', '--json']);
    assert.equal(r.status, 0, describeCli(r));
    await l.a.ok(drbdadm(`secondary ${RESOURCE}`));
    await expectWritesOnBoth(l, writes.filter((w) => w.tag !== 's2-a-x'));
    comparison.push('conflicting split brain, drbd-bisync: refused (exit 1, disks unchanged); prefer-local merged, loser restorable from the archive');
  });

  scenario('3. crashed primary (killed during writes, unclean meta-data with a live activity log)', async (l) => {
    const before: Write[] = [
      { node: l.a, tag: 's3-a1', offset: 2 * MiB, length: 16 * 1024 },
      { node: l.b, tag: 's3-b1', offset: 40 * MiB, length: 64 * 1024 },
      { node: l.b, tag: 's3-b2', offset: 52 * MiB, length: 4096 },
    ];
    await splitBrain(l);
    await writeAll(before);
    // nodea keeps writing 4 KiB blocks spread over 12-28 MiB (four AL extents) until the plug is pulled.
    const count = l.a.hostPath('crash-count');
    fs.rmSync(count, { force: true });
    l.a.start(`i=0; while :; do dd if=/dev/urandom of=/dev/drbd0 bs=4096 seek=$((3072 + i * 1031 % 4096)) count=1 oflag=direct status=none; i=$((i+1)); echo $i > /run/lab/crash-count; done`);
    const wrote = () => (fs.existsSync(count) ? Number(fs.readFileSync(count, 'utf8')) || 0 : 0);
    for (const t = Date.now(); wrote() < 20; await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() - t > 120_000) throw new Error(`nodea wrote only ${wrote()} blocks in 120 s`);
    }
    await l.a.kill();
    const tBoot = Date.now();
    await l.a.boot();
    timings.push(['  reboot of the killed guest', Date.now() - tBoot]);
    await down(l.b);
    const written = wrote();
    assert.ok(written > 0, 'nodea wrote before it was killed');
    const merged = await withHostLoops(l, (devA, devB): Merged => {
      saveUncleanMetadata(devA, l.a.disk, written);
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 0, describeCli(p));
      assert.equal(p.json.verdict, 'split-brain', describeCli(p));
      assert.equal(p.json.local?.unclean, true, 'nodea\'s meta-data is unclean (activity log included)');
      assert.ok(p.json.toPeerBytes >= 4 * MiB, `the activity log's 4 MiB extents are in the change set (toPeerBytes ${p.json.toPeerBytes})`);
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s3.json'), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
      return { finalized: finalizedOf(m), uuids: inspectBoth(devA, devB) };
    });
    await upAndExpectSynced(l, before, merged);
  });

  /** Plan and merge on the host over both (down) disks; the merge must leave the one-way resync to DRBD. */
  function leftToDrbd(l: Lab, verdict: string, journal: string): Promise<{ plan: any; uuids: [GenerationUuids, GenerationUuids]; outcome: string }> {
    return withHostLoops(l, (devA, devB) => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 0, describeCli(p));
      assert.equal(p.json.verdict, verdict, describeCli(p));
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, journal), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
      // One side ahead is DRBD's own one-way resync: drbd-bisync writes nothing.
      assert.equal(m.json.outcome, 'left-to-drbd', describeCli(m));
      assert.equal(m.json.finalized, null);
      assert.ok(typeof m.json.message === 'string' && m.json.message.length > 0, 'merge says what it did');
      return { plan: p.json, uuids: inspectBoth(devA, devB), outcome: `${m.json.outcome}: ${m.json.message}` };
    });
  }

  /** "Began resync as SyncSource (will sync N KB [B bits set])" on the node, as bytes. */
  function resyncBytes(lines: string[], as: 'SyncSource' | 'SyncTarget'): number[] {
    return lines.flatMap((l) => {
      const m = new RegExp(`Began resync as ${as} \\(will sync (\\d+) KB`).exec(l);
      return m ? [Number(m[1]) * 1024] : [];
    });
  }

  scenario('4. one-sided outage: only nodea wrote; DRBD resyncs exactly its bitmap (rules 70/50, as classify says)', async (l) => {
    const writes: Write[] = [
      { node: l.a, tag: 's4-a1', offset: 6 * MiB, length: 32 * 1024 },
      { node: l.a, tag: 's4-a2', offset: 50 * MiB, length: 4096 },
    ];
    await Promise.all(l.nodes.map((g) => g.ok(drbdadm(`disconnect ${RESOURCE}`))));
    await l.a.ok(drbdadm(`primary ${RESOURCE}`));
    await writeAll(writes);
    await Promise.all(l.nodes.map((g) => down(g)));
    const { plan, uuids, outcome } = await leftToDrbd(l, 'local-ahead', 'journal-s4.json');
    assert.equal(plan.toLocalBytes, 0);
    assert.equal(plan.toPeerBytes, (32 + 4) * 1024);
    const started = await upBoth(l);
    const [la] = await expectKernelAgrees(l, started.mark, uuids);
    await upAndExpectSynced(l, writes, undefined, started);
    // A bitmap-based resync of exactly what the plan said DRBD would move, from nodea.
    const logs = await connectLogs(l, started.mark);
    assert.deepEqual(resyncBytes(logs[0].resyncs, 'SyncSource'), [plan.toPeerBytes], `nodea: ${logs[0].resyncs.join(' | ')}`);
    assert.deepEqual(resyncBytes(logs[1].resyncs, 'SyncTarget'), [plan.toPeerBytes], `nodeb: ${logs[1].resyncs.join(' | ')}`);
    comparison.push(`one-sided outage, drbd-bisync: ${outcome}; DRBD: ${la.handshakes[0].line.replace(/^.*uuid_compare/, 'uuid_compare')}, resynced ${plan.toPeerBytes} bytes`);
  });

  scenario('5. baseline: DRBD alone stays StandAlone (rule 90, as classify says); --discard-my-data loses the victim\'s writes', async (l) => {
    const writes = disjoint(l, 's5');
    const aWrites = writes.filter((w) => w.node === l.a);
    const bWrites = writes.filter((w) => w.node === l.b);
    const beforeB = await hashesOn(l.a, bWrites); // what nodeb's ranges held before the split brain
    await splitBrainWith(l, writes);
    const uuids = await withHostLoops(l, (devA, devB) => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.json?.verdict, 'split-brain', describeCli(p));
      return inspectBoth(devA, devB);
    });
    const mark = await markBoth(l, 'up');
    await Promise.all(l.nodes.map((g) => up(g))); // up connects: both meet the split brain
    const sa = await waitState(l.a, (s) => s.cs === 'StandAlone', 'StandAlone after split-brain detection', 60_000);
    const sb = await waitState(l.b, (s) => s.cs === 'StandAlone' || s.cs === 'WFConnection', 'StandAlone or WFConnection', 60_000);
    const [la] = await expectKernelAgrees(l, mark, uuids);
    assert.ok(la.splitBrain.length > 0, 'nodea logged "Split-Brain detected"');
    comparison.push(`DRBD alone after the split brain: ${la.handshakes[0].line.replace(/^.*uuid_compare/, 'uuid_compare')}, nodea ${sa.cs}, nodeb ${sb.cs} (no replication until an operator acts)`);
    // The operator's usual fix: nodeb is the victim.
    if (sb.cs !== 'StandAlone') await l.b.ok(drbdadm(`disconnect ${RESOURCE}`));
    await l.b.ok(drbdadm(`-- --discard-my-data connect ${RESOURCE}`));
    if ((await procDrbd(l.a)).cs === 'StandAlone') await l.a.ok(drbdadm(`connect ${RESOURCE}`));
    await waitSynced(l);
    await expectWritesOnBoth(l, aWrites);
    for (const g of l.nodes) {
      const got = await hashesOn(g, bWrites);
      bWrites.forEach((w, i) => {
        assert.notEqual(got[i], sha256(contentOf(w)), `nodeb's write ${w.tag} survived --discard-my-data on ${g.name}`);
        assert.equal(got[i], beforeB[i], `nodeb's write ${w.tag} reverted to the pre-split-brain data on ${g.name}`);
      });
    }
    const lostBytes = bWrites.reduce((n, w) => n + w.length, 0);
    comparison.push(`DRBD --discard-my-data on nodeb: connected, nodeb's ${lostBytes} written bytes lost on both nodes; drbd-bisync (1a/1b) kept both sides' writes`);
  });

  scenario('6. split brain where each side also made a new current UUID: plan, merge and DRBD all refuse (rule 100)', async (l) => {
    await splitBrain(l);
    await writeAll(disjoint(l, 's6'));
    // A second generation on each side rotates the common UUID into history:
    // no bitmap covers all changes any more.
    await Promise.all(l.nodes.map((g) => g.ok(drbdadm(`new-current-uuid ${RESOURCE}`))));
    await Promise.all(l.nodes.map((g) => down(g)));
    const before = l.nodes.map((g) => fileSha256(g.disk));
    const uuids = await withHostLoops(l, (devA, devB) => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 1, describeCli(p)); // a plan that finds no safe merge is a refusal
      assert.deepEqual([p.json.verdict, p.json.rule], ['history-split-brain', 100], describeCli(p));
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s6.json'), '--yes', '--json']);
      assert.equal(m.status, 1, describeCli(m));
      assert.equal(m.json.outcome, 'refused', describeCli(m));
      return inspectBoth(devA, devB);
    });
    assert.deepEqual(l.nodes.map((g) => fileSha256(g.disk)), before, 'both disks byte for byte unchanged after the refusal');
    const mark = await markBoth(l, 'up');
    await Promise.all(l.nodes.map((g) => up(g)));
    await waitState(l.a, (s) => s.cs === 'StandAlone', 'StandAlone after split-brain detection', 60_000);
    const [la] = await expectKernelAgrees(l, mark, uuids);
    assert.ok(la.splitBrain.length > 0, 'nodea logged "Split-Brain detected"');
    comparison.push(`split brain over history, DRBD: ${la.handshakes[0].line.replace(/^.*uuid_compare/, 'uuid_compare')}, StandAlone; drbd-bisync: refused, nothing written`);
  });

  scenario('7. outage where the writer made a second generation: DRBD does a full sync (rules 60/80), as classify says', async (l) => {
    const writes: Write[] = [{ node: l.b, tag: 's7-b1', offset: 24 * MiB, length: 16 * 1024 }];
    await Promise.all(l.nodes.map((g) => g.ok(drbdadm(`disconnect ${RESOURCE}`))));
    await l.b.ok(drbdadm(`primary ${RESOURCE}`));
    await writeAll(writes);
    // nodea's current UUID ends up as nodeb's newest history UUID, not its bitmap UUID.
    await l.b.ok(drbdadm(`new-current-uuid ${RESOURCE}`));
    await Promise.all(l.nodes.map((g) => down(g)));
    const { uuids, outcome } = await leftToDrbd(l, 'peer-ahead', 'journal-s7.json');
    const started = await upBoth(l);
    const [la] = await expectKernelAgrees(l, started.mark, uuids);
    await upAndExpectSynced(l, writes, undefined, started);
    comparison.push(`outage with a second generation on the writer, drbd-bisync: ${outcome}; DRBD: ${la.handshakes[0].line.replace(/^.*uuid_compare/, 'uuid_compare')}`);
  });

  scenario('8. LVM on /dev/drbd0: each node wrote its own LV and nodeb one block of nodea\'s; plan names that LV, merge refuses, --lv vmA=local merges', async (l) => {
    const vg = 'vglab';
    const lvs = ['vmA', 'vmB', 'vmC'];
    await createVg(l, vg, { vmA: 8, vmB: 8, vmC: 4 });
    await splitBrain(l);
    // nodea runs VM A, nodeb VM B; VM A also ran on nodeb for a while (an HA restart) and wrote one block.
    const writes: Write[] = [
      { node: l.a, tag: 's8-a1', dev: lvPath(vg, 'vmA'), offset: 0, length: 64 * 1024 },
      { node: l.a, tag: 's8-a2', dev: lvPath(vg, 'vmA'), offset: 4 * MiB, length: 4096 },
      { node: l.b, tag: 's8-b1', dev: lvPath(vg, 'vmB'), offset: 1 * MiB, length: 128 * 1024 },
      { node: l.b, tag: 's8-b2', dev: lvPath(vg, 'vmA'), offset: 2 * MiB, length: 4096 },
    ];
    await writeAll(writes, (script) => withVgActive(vg, script));
    const [onA, onB] = await Promise.all(l.nodes.map(async (g) => parseLvHashes(lvs, await g.ok(withVgActive(vg, lvHashScript(vg, lvs))))));
    assert.notEqual(onB.vmA, onA.vmA, 'both nodes wrote vmA');
    assert.equal(onB.vmC, onA.vmC, 'nobody wrote vmC');
    // The chosen winner for vmA is nodea; vmB is only nodeb's.
    const expected = { vmA: onA.vmA, vmB: onB.vmB, vmC: onA.vmC };
    await Promise.all(l.nodes.map((g) => down(g)));

    const before = l.nodes.map((g) => fileSha256(g.disk));
    const merged = await withHostLoops(l, (devA, devB): Merged => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 1, describeCli(p));
      assert.equal(p.json.lvm?.vg?.name, vg, describeCli(p));
      assert.deepEqual(p.json.lvm.lvConflicts, ['vmA'], describeCli(p));
      assert.deepEqual(Object.fromEntries(p.json.lvm.lvs.map((lv: any) => [lv.name, lv.verdict])), { vmA: 'both', vmB: 'peer-only', vmC: 'unchanged' });
      assert.equal(p.json.conflictBytes, 0, 'no block was written on both nodes: only the LV says it is a conflict');
      const human = hostCli(['plan', '--device', devA, '--peer-device', devB]);
      assert.match(human.stdout, /vmA/, describeCli(human));
      assert.match(human.stdout + human.stderr, /--lv/, `the report says how to pick a winner: ${describeCli(human)}`);
      const refused = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s8.json'), '--yes', '--json']);
      assert.equal(refused.status, 1, describeCli(refused));
      assert.deepEqual(l.nodes.map((g) => fileSha256(g.disk)), before, 'both disks byte for byte unchanged after the refusal');
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--lv', 'vmA=local', '--archive', l.a.hostPath('archive-s8'),
        '--journal', path.join(l.dir, 'journal-s8b.json'), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
      assert.equal(m.json.lvm.lvs.find((lv: any) => lv.name === 'vmA')?.resolution, 'local', describeCli(m));
      return { finalized: finalizedOf(m), uuids: inspectBoth(devA, devB) };
    });
    await upAndExpectSynced(l, [], merged);
    // On each node in turn: LVM still sees the VG, and every LV holds its chosen writer's version.
    for (const g of l.nodes) {
      const out = await readingDrbd(g, withVgActive(vg, `${lvm(`lvs --noheadings -o lv_name ${vg}`)} | tr -d ' ' | sort | paste -sd' '\n${lvHashScript(vg, lvs)}`));
      const [names, ...hashes] = out.trim().split('\n');
      assert.equal(names, lvs.join(' '), `lvs on ${g.name}`);
      assert.deepEqual(parseLvHashes(lvs, hashes.join('\n')), expected, `LV contents on ${g.name} (vmA nodea's, vmB nodeb's, vmC untouched)`);
    }
    comparison.push('LVM: an LV written on both nodes in different blocks: plan names it, merge refuses; --lv vmA=local merged, every LV its writer\'s on both, lvs works');
  });
});

/** Keeps a real crashed primary's meta-data (superblock, AL, bitmap) as a fixture, when asked. */
function saveUncleanMetadata(dev: string, image: string, writes: number): void {
  const dest = process.env.DRBD_LAB_SAVE_UNCLEAN;
  if (!dest) return;
  const size = fs.statSync(image).size;
  const mdBytes = 136 * 512 > size ? size : 1024 * 1024; // the last MiB holds all of it for a 64 MiB disk
  const fd = fs.openSync(image, 'r');
  const buf = Buffer.alloc(mdBytes);
  fs.readSync(fd, buf, 0, mdBytes, size - mdBytes);
  fs.closeSync(fd);
  fs.mkdirSync(dest, { recursive: true });
  fs.writeFileSync(path.join(dest, 'tail.bin'), buf);
  fs.writeFileSync(path.join(dest, 'info.json'), JSON.stringify({ device: dev, imageBytes: size, tailOffset: size - mdBytes, tailBytes: mdBytes, writesBeforeKill: writes }, null, 2));
}

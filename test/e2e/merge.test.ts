// End to end: two real DRBD 8.4 nodes under qemu. Each scenario makes a split
// brain (or an outage, or a crash), repairs it with drbd-bisync, and checks from
// inside the guests (/proc/drbd, drbdadm, reads through /dev/drbd0) that DRBD
// reconnects UpToDate/UpToDate with nothing to resync and both sides' writes.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, labUnavailable, prepareLab } from '../../scripts/drbd-lab/lab';
import {
  BACKING, RESOURCE, configure, down, drbdadm, procDrbd, resetToSynced, splitBrain, up, waitState, waitSynced,
} from '../../scripts/drbd-lab/drbd';
import {
  CLI, MiB, Write, contentOf, copyDisk, describeCli, expectWritesOnBoth, fileSha256, guestCli,
  hashesOn, hostCli, sha256, withHostLoops, writeAll,
} from './lab-helpers';

const timings: Array<[string, number]> = [];
const comparison: string[] = [];

describe('e2e: drbd-bisync against two DRBD 8.4 nodes under qemu', function () {
  let lab: Lab | undefined;
  let unavailable: string | undefined;
  const t0 = Date.now();

  before(async function () {
    unavailable = labUnavailable();
    if (!unavailable && !fs.existsSync(CLI)) unavailable = `needs the build (${path.relative(process.cwd(), CLI)}; run npm run build)`;
    if (unavailable) return;
    const t = Date.now();
    try {
      prepareLab();
    } catch (e) {
      unavailable = `kernel unavailable: ${(e as Error).message}`;
      return;
    }
    timings.push(['kernel + initramfs (cached after the first run)', Date.now() - t]);
    lab = await Lab.create();
    timings.push(['boot both guests', await lab.boot()]);
    await configure(lab); // each scenario starts with resetToSynced
  });

  after(async function () {
    await lab?.close();
    if (!lab) return;
    timings.push(['whole lab', Date.now() - t0]);
    console.log('\n  Timings:');
    for (const [what, ms] of timings) console.log(`    ${(what.length > 56 ? `${what.slice(0, 55)}…` : what).padEnd(58)} ${(ms / 1000).toFixed(1).padStart(6)} s`);
    if (comparison.length) console.log(`\n  DRBD alone vs drbd-bisync:\n${comparison.map((l) => `    ${l}`).join('\n')}`);
  });

  /** Runs a scenario on a lab reset to Connected UpToDate/UpToDate, and times it. */
  function scenario(title: string, body: (lab: Lab) => Promise<void>): void {
    it(title, async function () {
      if (unavailable) {
        this.test!.title += ` (pending: ${unavailable})`;
        this.skip();
      }
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

  async function upAndExpectSynced(l: Lab, writes: Write[]): Promise<void> {
    await Promise.all(l.nodes.map((g) => up(g)));
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
    await expectWritesOnBoth(l, writes, true);
  }

  scenario('1a. disjoint writes on both sides, merged on the host over both disk images', async (l) => {
    const writes = disjoint(l, 's1a');
    await splitBrainWith(l, writes);
    const journal = path.join(l.dir, 'journal-s1a.json');
    await withHostLoops(l, (devA, devB) => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 0, describeCli(p));
      assert.equal(p.json.verdict, 'split-brain', describeCli(p));
      assert.equal(p.json.conflictBytes, 0);
      assert.equal(p.json.toPeerBytes, (64 + 4) * 1024);
      assert.equal(p.json.toLocalBytes, (128 + 8) * 1024);
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', journal, '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
    });
    await upAndExpectSynced(l, writes);
    comparison.push(`disjoint split brain, drbd-bisync merge: Connected UpToDate/UpToDate oos:0, all ${writes.length} writes of both nodes on both`);
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
    await upAndExpectSynced(l, writes);
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
    await withHostLoops(l, (devA, devB) => {
      const refused = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s2.json'), '--yes', '--json']);
      assert.equal(refused.status, 1, describeCli(refused));
      assert.deepEqual(l.nodes.map((g) => fileSha256(g.disk)), before, 'both disks byte for byte unchanged after the refusal');
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--on-conflict', 'prefer-local', '--archive', archive,
        '--journal', path.join(l.dir, 'journal-s2b.json'), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
    });
    const winners = writes.filter((w) => w.tag !== 's2-b-x');
    await upAndExpectSynced(l, winners);
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
    await withHostLoops(l, (devA, devB) => {
      saveUncleanMetadata(devA, l.a.disk, written);
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 0, describeCli(p));
      assert.equal(p.json.verdict, 'split-brain', describeCli(p));
      assert.equal(p.json.local?.unclean, true, 'nodea\'s meta-data is unclean (activity log included)');
      assert.ok(p.json.toPeerBytes >= 4 * MiB, `the activity log's 4 MiB extents are in the change set (toPeerBytes ${p.json.toPeerBytes})`);
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s3.json'), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
    });
    await upAndExpectSynced(l, before);
  });

  scenario('4. one-sided outage: only nodea wrote', async (l) => {
    const writes: Write[] = [
      { node: l.a, tag: 's4-a1', offset: 6 * MiB, length: 32 * 1024 },
      { node: l.a, tag: 's4-a2', offset: 50 * MiB, length: 4096 },
    ];
    await Promise.all(l.nodes.map((g) => g.ok(drbdadm(`disconnect ${RESOURCE}`))));
    await l.a.ok(drbdadm(`primary ${RESOURCE}`));
    await writeAll(writes);
    await Promise.all(l.nodes.map((g) => down(g)));
    let outcome = '';
    await withHostLoops(l, (devA, devB) => {
      const p = hostCli(['plan', '--device', devA, '--peer-device', devB, '--json']);
      assert.equal(p.status, 0, describeCli(p));
      assert.equal(p.json.verdict, 'local-ahead', describeCli(p));
      assert.equal(p.json.toLocalBytes, 0);
      const m = hostCli(['merge', '--device', devA, '--peer-device', devB, '--journal', path.join(l.dir, 'journal-s4.json'), '--yes', '--json']);
      assert.equal(m.status, 0, describeCli(m));
      assert.ok(['merged', 'left-to-drbd'].includes(m.json.outcome), describeCli(m));
      assert.ok(typeof m.json.message === 'string' && m.json.message.length > 0, 'merge says what it did');
      outcome = `${m.json.outcome}: ${m.json.message}`;
    });
    await upAndExpectSynced(l, writes);
    comparison.push(`one-sided outage, drbd-bisync: ${outcome}`);
  });

  scenario('5. baseline: DRBD alone stays StandAlone; --discard-my-data loses the victim\'s writes', async (l) => {
    const writes = disjoint(l, 's5');
    const aWrites = writes.filter((w) => w.node === l.a);
    const bWrites = writes.filter((w) => w.node === l.b);
    const beforeB = await hashesOn(l.a, bWrites); // what nodeb's ranges held before the split brain
    await splitBrain(l);
    await writeAll(writes);
    await Promise.all(l.nodes.map((g) => g.ok(drbdadm(`secondary ${RESOURCE}`))));
    await Promise.all(l.nodes.map((g) => g.ok(drbdadm(`connect ${RESOURCE}`))));
    const sa = await waitState(l.a, (s) => s.cs === 'StandAlone', 'StandAlone after split-brain detection', 60_000);
    const sb = await waitState(l.b, (s) => s.cs === 'StandAlone' || s.cs === 'WFConnection', 'StandAlone or WFConnection', 60_000);
    comparison.push(`DRBD alone after the split brain: nodea ${sa.cs}, nodeb ${sb.cs} (no replication until an operator acts)`);
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

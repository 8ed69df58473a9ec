// Bidirectional merges between two backing devices on one host
// (--peer-device): devices whose DRBD meta-data createMetadata() wrote (byte
// for byte what drbdmeta create-md writes), the result compared byte for byte
// with the expected merge and the meta-data checked with drbdmeta.
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Extent, intersect, subtract, union } from '../../lib/device/extent';
import { plan } from '../../lib/plan/plan';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { Merge } from '../../lib/resync/merge';
import { dump } from '../../scripts/drbdmeta';
import { makePair, randomRanges, randomUuid, restoreMetadata, splitBrainStates } from '../../scripts/split-brain';
import { cli, cliJson } from '../helpers/cli';
import { requires } from '../helpers/env';
import { Pair, drbdmetaView, overlay, readAll, readRange, setupPair } from '../helpers/pair';

const SIZE = 24 << 20;

/** A split brain whose two sides wrote apart (never the same block), so the merge has no conflict to stop at. */
function writtenApart(): ReturnType<typeof splitBrainStates> {
  const a = randomRanges(SIZE / 2, 4, 4);
  return splitBrainStates(a, randomRanges(SIZE - (1 << 20), 4, 4, a));
}

async function runMerge(p: Pair, opts: ConstructorParameters<typeof Merge>[2] = {}) {
  const local = await LocalEndpoint.open(p.local, { write: !opts.dryRun });
  const peer = await LocalEndpoint.open(p.peer, { write: !opts.dryRun });
  try {
    return await new Merge(local, peer, { journal: path.join(p.dir, 'journal.json'), ...opts }).run();
  } finally {
    await Promise.all([local.close(), peer.close()]);
  }
}

function assertFinalized(p: Pair): void {
  const [a, b] = [drbdmetaView(p.local), drbdmetaView(p.peer)];
  assert.equal(a.current, b.current, 'same current UUID on both nodes');
  assert.equal(a.bitmap, '0000000000000000');
  assert.equal(b.bitmap, '0000000000000000');
  assert.equal(a.bitsSet, 0);
  assert.equal(b.bitsSet, 0);
  assert.ok(a.consistent && a.wasUpToDate && b.consistent && b.wasUpToDate);
  assert.ok(!a.unclean && !b.unclean, 'clean meta-data');
}

function assertData(p: Pair, expected: Buffer): void {
  assert.ok(readRange(p.local, 0, p.dataSize).equals(expected), 'local data is the expected merge');
  assert.ok(readRange(p.peer, 0, p.dataSize).equals(expected), 'peer data is the expected merge');
}

describe('merge (two devices on one host)', function () {
  let p: Pair | undefined;
  beforeEach(function () {
    requires(this, 'drbdmeta');
  });
  afterEach(() => {
    p?.cleanup();
    p = undefined;
  });

  it('merges disjoint random changes both ways and finalises meta-data', async () => {
    const a = randomRanges(SIZE / 2, 30, 40);
    const b = randomRanges(SIZE - (2 << 20), 30, 40, a);
    p = await setupPair(SIZE, { ...splitBrainStates(a, b), commonData: true });
    const report = await runMerge(p);
    assert.equal(report.outcome, 'merged');
    assert.equal(report.movedToPeerBytes, a.reduce((s, e) => s + e[1], 0));
    assert.equal(report.movedToLocalBytes, b.reduce((s, e) => s + e[1], 0));
    assert.equal(report.verification?.ok, true);
    assertData(p, overlay(p.before.local, p.before.peer, b));
    assertFinalized(p);
  });

  it('merges a DRBD 9 (v09 meta-data) split brain and finalises both nodes\' peer slots', async () => {
    const a = randomRanges(SIZE / 2, 20, 16);
    const b = randomRanges(SIZE - (2 << 20), 20, 16, a);
    p = await setupPair(SIZE, { ...splitBrainStates(a, b), format: 'v09' });
    const report = await runMerge(p);
    assert.equal(report.outcome, 'merged', report.message);
    assertData(p, overlay(p.before.local, p.before.peer, b));
    const [x, y] = [p.local, p.peer].map((d) => dump({ fmt: 'v09', mdDev: d, placement: 'internal' }));
    assert.equal(x.current, y.current, 'same current UUID');
    assert.equal(x.peers[1].bitmapUuid, 0n);
    assert.equal(y.peers[0].bitmapUuid, 0n);
    assert.ok([...x.words[0], ...y.words[0]].every((w) => w === 0n), 'bitmaps cleared');
    assert.ok(x.flags & 0x80 && y.flags & 0x80, 'activity log clean');
  });

  it('treats blocks both sides wrote identically as no conflict', async () => {
    const shared = randomRanges(SIZE / 2, 10, 8);
    const a = randomRanges(SIZE / 2, 10, 8, shared);
    const b = randomRanges(SIZE / 2, 10, 8, [...shared, ...a]);
    p = await setupPair(SIZE, { ...splitBrainStates(a, b), identicalWrites: shared });
    const pl = await planFor(p);
    assert.equal(pl.verdict, 'split-brain');
    assert.equal(pl.conflictBytes, 0);
    assert.equal(pl.identicalOverlapBytes, shared.reduce((s, e) => s + e[1], 0));
    const report = await runMerge(p);
    assert.equal(report.outcome, 'merged');
    assertData(p, overlay(p.before.local, p.before.peer, b));
    assertFinalized(p);
  });

  it('refuses overlapping different writes, changing nothing (exit 1)', async () => {
    const a = randomRanges(SIZE / 2, 12, 16);
    const b: Extent[] = [...union(a.slice(0, 3), randomRanges(SIZE / 2, 6, 4, a))];
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const r = cliJson<{ outcome: string; plan: { conflicts: Extent[]; conflictBytes: number } }>(['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json')]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.doc.outcome, 'conflicts');
    assert.deepEqual(r.doc.plan.conflicts, [...intersect(a, b)]);
    assert.ok(readAll(p.local).equals(p.before.localFile), 'local device unchanged, meta-data included');
    assert.ok(readAll(p.peer).equals(p.before.peerFile), 'peer device unchanged, meta-data included');
    assert.ok(!fs.existsSync(path.join(p.dir, 'j.json')), 'no journal was written');
  });

  it('resolves conflicts by policy, archiving the loser first; restore-archive brings it back', async () => {
    const a = randomRanges(SIZE / 2, 12, 16);
    const b: Extent[] = [...union(a.slice(0, 4), randomRanges(SIZE / 2, 6, 4, a))];
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const conflicts = [...intersect(a, b)];
    const archive = path.join(p.dir, 'archive');
    const report = await runMerge(p, { onConflict: 'prefer-local', archive });
    assert.equal(report.outcome, 'merged');
    assert.equal(report.conflictResolution.archivedBytes, conflicts.reduce((s, e) => s + e[1], 0));
    assertData(p, overlay(p.before.local, p.before.peer, [...subtract(b, a)]));
    assertFinalized(p);
    const r = cli(['restore-archive', '--archive', archive, '--device', p.peer, '--yes']);
    assert.equal(r.status, 0, r.stderr);
    const restored = readRange(p.peer, 0, p.dataSize);
    for (const [off, len] of conflicts) assert.ok(restored.subarray(off, off + len).equals(p.before.peer.subarray(off, off + len)), `peer's own bytes back at ${off}`);
  });

  it('reads each superblock twice, for the plan and for the finalize guard, not once more per archived lane', async () => {
    const a = randomRanges(SIZE / 2, 12, 16);
    const b: Extent[] = [...union(a.slice(0, 4), randomRanges(SIZE / 2, 6, 4, a))];
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const local = await LocalEndpoint.open(p.local, { write: true });
    const peer = await LocalEndpoint.open(p.peer, { write: true });
    const calls: string[] = [];
    let phase = 'start';
    for (const [side, ep] of [['local', local], ['peer', peer]] as const) {
      const info = ep.info.bind(ep);
      ep.info = () => {
        calls.push(`${side}@${phase}`);
        return info();
      };
    }
    try {
      const m = new Merge(local, peer, { journal: path.join(p.dir, 'journal.json'), onConflict: 'prefer-local', archive: path.join(p.dir, 'archive') });
      m.on('progress', (e: { phase: string }) => {
        phase = e.phase;
      });
      const report = await m.run();
      assert.equal(report.outcome, 'merged', report.message);
      assert.ok(report.conflictResolution.archivedBytes > 0, 'the conflicts lane archived the peer\'s bytes');
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
    assert.deepEqual(calls.sort(), ['local@start', 'local@verify', 'peer@start', 'peer@verify']);
  });

  it('prefer-peer keeps the peer\'s blocks everywhere it wrote', async () => {
    const a = randomRanges(SIZE / 2, 8, 16);
    const b: Extent[] = [...union(a.slice(1, 3), randomRanges(SIZE / 2, 6, 4, a))];
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const report = await runMerge(p, { onConflict: 'prefer-peer', archive: path.join(p.dir, 'archive') });
    assert.equal(report.outcome, 'merged');
    assertData(p, overlay(p.before.local, p.before.peer, b));
  });

  for (const [name, relation, verdict] of [
    ['unrelated data', 'unrelated', 'unrelated'],
    ['a split brain known only through history', 'history', 'history-split-brain'],
  ] as const) {
    it(`refuses ${name} (exit 1), changing nothing`, async () => {
      const h = randomUuid();
      const local = { current: randomUuid(), bitmap: randomUuid(), history: [relation === 'history' ? h : randomUuid(), 0n] as [bigint, bigint], writes: randomRanges(SIZE / 2, 3, 2) };
      const peer = { current: randomUuid(), bitmap: randomUuid(), history: [randomUuid(), relation === 'history' ? h : randomUuid()] as [bigint, bigint], writes: randomRanges(SIZE / 2, 3, 2) };
      p = await setupPair(SIZE, { local, peer });
      const r = cliJson<{ outcome: string; plan: { verdict: string; reason: string } }>(['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json')]);
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.doc.outcome, 'refused');
      assert.equal(r.doc.plan.verdict, verdict);
      assert.ok(readAll(p.local).equals(p.before.localFile) && readAll(p.peer).equals(p.before.peerFile));
    });
  }

  it('says which side is ahead after a one-sided outage and leaves the resync to DRBD', async () => {
    const c = randomUuid();
    const h: [bigint, bigint] = [randomUuid(), 0n];
    const writes = randomRanges(SIZE / 2, 5, 4);
    p = await setupPair(SIZE, { local: { current: c, bitmap: 0n, history: h, writes: [] }, peer: { current: randomUuid(), bitmap: c, history: h, writes } });
    const pl = cliJson<{ verdict: string; toLocalBytes: number; toPeerBytes: number }>(['plan', '--device', p.local, '--peer-device', p.peer]);
    assert.equal(pl.status, 0, pl.stderr);
    assert.equal(pl.doc.verdict, 'peer-ahead');
    assert.equal(pl.doc.toLocalBytes, writes.reduce((s, e) => s + e[1], 0));
    assert.equal(pl.doc.toPeerBytes, 0);
    const m = cliJson<{ outcome: string; message: string }>(['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json')]);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(m.doc.outcome, 'left-to-drbd');
    assert.match(m.doc.message, /from the peer to this node/);
    assert.ok(readAll(p.local).equals(p.before.localFile));
  });

  it('refuses devices of different usable size, naming both (exit 1)', async () => {
    const x = await setupPair(SIZE, splitBrainStates([], []));
    const y = await setupPair(SIZE + (8 << 20), splitBrainStates([], []));
    try {
      const r = cli(['plan', '--device', x.local, '--peer-device', y.peer]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /usable sizes differ/);
      assert.ok(r.stderr.includes(x.local) && r.stderr.includes(y.peer));
    } finally {
      x.cleanup();
      y.cleanup();
    }
  });

  it('refuses to write without --yes when standard input is not a terminal (exit 1)', async () => {
    p = await setupPair(SIZE, splitBrainStates(randomRanges(SIZE / 2, 2, 2), []));
    const r = cli(['merge', '--device', p.local, '--peer-device', p.peer, '--journal', path.join(p.dir, 'j.json')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--yes/);
    assert.ok(readAll(p.local).equals(p.before.localFile));
  });

  it('stops before overwriting anything it could not archive (full archive disk), and resumes once there is room', async function () {
    requires(this, 'root');
    const a = randomRanges(SIZE / 2, 16, 32);
    const b: Extent[] = [...union(a.slice(0, 8), randomRanges(SIZE / 2, 4, 4, a))];
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const archive = path.join(p.dir, 'archive');
    fs.mkdirSync(archive);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', archive]);
    try {
      const args = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json'), '--on-conflict', 'prefer-local', '--archive', archive];
      const full = cli(args);
      assert.equal(full.status, 2, full.stdout);
      assert.match(full.stderr, /ENOSPC/);
      const peerNow = readRange(p.peer, 0, p.dataSize);
      for (const [off, len] of intersect(a, b)) assert.ok(peerNow.subarray(off, off + len).equals(p.before.peer.subarray(off, off + len)), `conflict block at ${off} not overwritten`);
      execFileSync('mount', ['-o', 'remount,size=64m', archive]);
      const again = cli(args);
      assert.equal(again.status, 0, again.stderr);
      assertData(p, overlay(p.before.local, p.before.peer, [...subtract(b, a)]));
      assertFinalized(p);
      assert.equal(cli(['restore-archive', '--archive', archive, '--device', p.peer, '--yes']).status, 0);
      const restored = readRange(p.peer, 0, p.dataSize);
      for (const [off, len] of intersect(a, b)) assert.ok(restored.subarray(off, off + len).equals(p.before.peer.subarray(off, off + len)));
    } finally {
      spawnSync('umount', [archive]);
    }
  });

  it('refuses to resume with another conflict policy once conflicts may have been overwritten', async () => {
    const a = randomRanges(SIZE / 2, 10, 4);
    p = await setupPair(SIZE, splitBrainStates(a, a));
    const archive = path.join(p.dir, 'archive');
    const base = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json'), '--archive', archive];
    // Only conflicts: the crash hits the conflicts lane after it wrote.
    const killed = cli([...base, '--on-conflict', 'prefer-local'], { env: { DRBD_BISYNC_FAILPOINT: 'mid-transfer' } });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    for (const other of [['--on-conflict', 'prefer-peer'], []]) {
      const r = cli([...base, ...other]);
      assert.notEqual(r.status, 0, `resumed with ${other.join(' ') || 'no policy'}: ${r.stdout}`);
      assert.match(r.stderr, /same policy/);
    }
    const again = cli([...base, '--on-conflict', 'prefer-local']);
    assert.equal(again.status, 0, again.stderr);
    assertData(p, p.before.local);
    assertFinalized(p);
  });

  it('an --archive that cannot be a folder stops the merge before either device is written', async () => {
    const a = randomRanges(SIZE / 2, 8, 8);
    p = await setupPair(SIZE, splitBrainStates(a, [...union(a.slice(0, 3), randomRanges(SIZE / 2, 4, 4, a))]));
    const notDir = path.join(p.dir, 'a-file');
    fs.writeFileSync(notDir, 'x');
    const r = cli(['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json'), '--on-conflict', 'prefer-peer', '--archive', notDir]);
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, /ENOTDIR|EEXIST/);
    assert.ok(readAll(p.local).equals(p.before.localFile), 'local device unchanged');
    assert.ok(readAll(p.peer).equals(p.before.peerFile), 'peer device unchanged');
  });

  it('refuses to resume into another archive folder than the one its journal names, and resumes into that one', async () => {
    const a = randomRanges(SIZE / 2, 10, 4);
    p = await setupPair(SIZE, splitBrainStates(a, a));
    const archive = path.join(p.dir, 'archive');
    const base = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json'), '--on-conflict', 'prefer-local'];
    const killed = cli([...base, '--archive', archive], { env: { DRBD_BISYNC_FAILPOINT: 'mid-transfer' } });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    const [l, r] = [readAll(p.local), readAll(p.peer)];
    const other = cli([...base, '--archive', path.join(p.dir, 'other')]);
    assert.equal(other.status, 1, other.stdout);
    assert.match(other.stderr, /archives into .*archive.*--archive .*archive/s);
    assert.ok(readAll(p.local).equals(l) && readAll(p.peer).equals(r), 'nothing written by the refused run');
    const again = cli([...base, '--archive', archive]);
    assert.equal(again.status, 0, again.stderr);
    assertData(p, p.before.local);
    assertFinalized(p);
    assert.equal(cli(['restore-archive', '--archive', archive, '--device', p.peer, '--yes']).status, 0);
    const restored = readRange(p.peer, 0, p.dataSize);
    for (const [off, len] of a) assert.ok(restored.subarray(off, off + len).equals(p.before.peer.subarray(off, off + len)), `peer's own bytes back at ${off}`);
  });

  it('refuses a journal left in its finalize phase by another merge, writing nothing', async () => {
    p = await setupPair(SIZE, splitBrainStates(randomRanges(SIZE / 2, 4, 4), []));
    const args = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json')];
    assert.equal(cli(args, { env: { DRBD_BISYNC_FAILPOINT: 'before-finalize' } }).signal, 'SIGKILL');
    // A new split brain on the same devices; the old journal must not finalise it.
    await makePair(p.local, p.peer, writtenApart());
    const [l, r] = [readAll(p.local), readAll(p.peer)];
    const again = cli(args);
    assert.notEqual(again.status, 0, again.stdout);
    assert.match(again.stderr, /another merge/);
    assert.ok(readAll(p.local).equals(l) && readAll(p.peer).equals(r), 'nothing written');
  });

  it('merges and resolves a conflict in a partial last block (usable size not a multiple of 4 KiB)', async () => {
    const full = await setupPair(SIZE, splitBrainStates([], []));
    const dataSize = full.dataSize - 1536;
    full.cleanup();
    const last: Extent = [dataSize - (dataSize % 4096), dataSize % 4096];
    const a = [...randomRanges(SIZE / 2, 6, 4), last];
    const b = [...randomRanges(SIZE / 2, 6, 4, a), last];
    p = await setupPair(SIZE, { ...splitBrainStates(a, b), dataSize });
    assert.equal(p.dataSize, dataSize);
    const pl = await planFor(p);
    assert.deepEqual(pl.conflicts, [last]);
    const report = await runMerge(p, { onConflict: 'prefer-peer', archive: path.join(p.dir, 'archive'), verify: 'full' });
    assert.equal(report.outcome, 'merged', report.message);
    assert.equal(report.conflictResolution.archivedBytes, last[1]);
    assertData(p, overlay(p.before.local, p.before.peer, b));
    assertFinalized(p);
    for (const [dev, before] of [[p.local, p.before.localFile], [p.peer, p.before.peerFile]] as const) {
      assert.ok(readRange(dev, dataSize, 1536).equals(before.subarray(dataSize, dataSize + 1536)), `nothing past the usable size written on ${dev}`);
    }
  });

  it('stops both directions when one fails: nothing is written after the merge reports the error', async () => {
    const a = randomRanges(SIZE / 2, 8, 8);
    const b = randomRanges(SIZE - (1 << 20), 60, 32, a);
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const local = await LocalEndpoint.open(p.local, { write: true });
    const peer = await LocalEndpoint.open(p.peer, { write: true });
    let localWrites = 0;
    const countingLocal = Object.assign(Object.create(local) as LocalEndpoint, {
      write: async (e: Extent[], d: Buffer) => {
        localWrites++;
        await new Promise((r) => setTimeout(r, 5));
        return local.write(e, d);
      },
    });
    const failingPeer = Object.assign(Object.create(peer) as LocalEndpoint, { write: () => Promise.reject(new Error('link cut')) });
    try {
      const m = new Merge(countingLocal, failingPeer, { journal: path.join(p.dir, 'j.json'), batchBytes: 4096, concurrency: 2 });
      await assert.rejects(m.run(), /link cut/);
      const atError = localWrites;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(localWrites, atError, 'no write started after run() rejected');
      assert.ok(atError < b.length, `the other direction stopped early (${atError} writes)`);
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
  });

  it('a failed verification is repaired by running the merge again', async () => {
    const a = randomRanges(SIZE / 2, 6, 8);
    const b = randomRanges(SIZE - (1 << 20), 6, 8, a);
    p = await setupPair(SIZE, splitBrainStates(a, b));
    const local = await LocalEndpoint.open(p.local, { write: true });
    const peer = await LocalEndpoint.open(p.peer, { write: true });
    // A peer that acknowledges one batch without storing it.
    let dropped = false;
    const lossyPeer = Object.assign(Object.create(peer) as LocalEndpoint, {
      write: (e: Extent[], d: Buffer) => (dropped ? peer.write(e, d) : ((dropped = true), Promise.resolve())),
    });
    try {
      await assert.rejects(new Merge(local, lossyPeer, { journal: path.join(p.dir, 'j.json'), batchBytes: 4096 }).run(), /verification failed/);
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
    const report = await runMerge(p, { journal: path.join(p.dir, 'j.json') });
    assert.equal(report.outcome, 'merged', report.message);
    assertData(p, overlay(p.before.local, p.before.peer, b));
    assertFinalized(p);
  });

  it('leaves the meta-data untouched when the peer\'s UUIDs changed between plan and finalize', async () => {
    p = await setupPair(SIZE, writtenApart());
    const [lv, pv] = [drbdmetaView(p.local), drbdmetaView(p.peer)];
    const local = await LocalEndpoint.open(p.local, { write: true });
    const peer = await LocalEndpoint.open(p.peer, { write: true });
    // As if DRBD had been brought up on the peer during the transfer.
    let wrote = false;
    const movingPeer = Object.assign(Object.create(peer) as LocalEndpoint, {
      write: (e: Extent[], d: Buffer) => ((wrote = true), peer.write(e, d)),
      info: async () => {
        const i = await peer.info();
        return wrote ? { ...i, metadata: { ...i.metadata!, uuids: { ...i.metadata!.uuids, current: 'ABCDEF0123456788' } } } : i;
      },
    });
    try {
      await assert.rejects(new Merge(local, movingPeer, { journal: path.join(p.dir, 'j.json') }).run(), /peer meta-data .* changed during the merge/);
    } finally {
      await Promise.all([local.close(), peer.close()]);
    }
    assert.deepEqual([drbdmetaView(p.local), drbdmetaView(p.peer)], [lv, pv], 'meta-data untouched on both nodes');
  });

  it('finds its default journal again when the device is named by another path', async function () {
    requires(this, 'root');
    p = await setupPair(SIZE, writtenApart());
    const alias = path.join(p.dir, 'alias.img');
    fs.symlinkSync(p.local, alias);
    const journal = `/var/lib/drbd-bisync/${p.local.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '_')}.journal.json`;
    try {
      const killed = cli(['merge', '--device', alias, '--peer-device', p.peer, '--yes'], { env: { DRBD_BISYNC_FAILPOINT: 'between-finalize-writes' } });
      assert.equal(killed.signal, 'SIGKILL', killed.stderr);
      const again = cliJson<{ outcome: string; resumed: boolean }>(['merge', '--device', p.local, '--peer-device', p.peer, '--yes']);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(again.doc.resumed, true);
      assertFinalized(p);
    } finally {
      fs.rmSync(journal, { force: true });
    }
  });

  it('a node written again while a merge was interrupted is merged again, not finalised over', async () => {
    const a = randomRanges(SIZE / 2, 6, 4, [[0, 1 << 20]]);
    const b = randomRanges(SIZE - (1 << 20), 6, 4, [[0, 1 << 20], ...a]);
    const states = splitBrainStates(a, b);
    p = await setupPair(SIZE, states);
    const args = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json')];
    assert.equal(cli(args, { env: { DRBD_BISYNC_FAILPOINT: 'before-finalize' } }).signal, 'SIGKILL');
    // DRBD brought up on the peer meanwhile, still disconnected: a new write, a new bit, the same UUIDs.
    const late: Extent = [8192, 4096];
    const fd = fs.openSync(p.peer, 'r+');
    const lateData = Buffer.alloc(4096, 0x5a);
    fs.writeSync(fd, lateData, 0, 4096, late[0]);
    fs.closeSync(fd);
    await restoreMetadata(p.peer, 'v08', 1, states.peer, p.dataSize, [late, ...b]);
    const again = cli(args);
    assert.equal(again.status, 0, again.stderr);
    const expected = overlay(p.before.local, p.before.peer, b);
    lateData.copy(expected, late[0]);
    assertData(p, expected);
    assertFinalized(p);
  });

  describe('resume after a crash', () => {
    for (const point of ['mid-transfer', 'after-archive', 'before-finalize', 'between-finalize-writes'] as const) {
      it(`a merge killed (SIGKILL) at ${point} and run again ends as an uninterrupted one`, async () => {
        const a = randomRanges(SIZE / 2, 40, 32);
        const b: Extent[] = [...union(a.slice(0, 3), randomRanges(SIZE - (1 << 20), 40, 32, a))];
        p = await setupPair(SIZE, { ...splitBrainStates(a, b), commonData: true });
        const archive = path.join(p.dir, 'archive');
        const args = ['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--journal', path.join(p.dir, 'j.json'), '--on-conflict', 'prefer-local', '--archive', archive, '--json'];
        const killed = cli(args, { env: { DRBD_BISYNC_FAILPOINT: point } });
        assert.equal(killed.signal, 'SIGKILL', `killed at ${point}: ${killed.stderr}`);
        const again = cli(args);
        assert.equal(again.status, 0, again.stderr);
        assert.equal(JSON.parse(again.stdout).resumed, true);
        assertData(p, overlay(p.before.local, p.before.peer, [...subtract(b, a)]));
        assertFinalized(p);
        // The loser's bytes are in the archive exactly once per range or more, never missing.
        const r = cli(['restore-archive', '--archive', archive, '--device', p.peer, '--yes']);
        assert.equal(r.status, 0, r.stderr);
        const restored = readRange(p.peer, 0, p.dataSize);
        for (const [off, len] of intersect(a, b)) assert.ok(restored.subarray(off, off + len).equals(p.before.peer.subarray(off, off + len)));
      });
    }
  });
});

async function planFor(p: Pair) {
  const [l, r] = [await LocalEndpoint.open(p.local), await LocalEndpoint.open(p.peer)];
  try {
    return await plan(l, r);
  } finally {
    await Promise.all([l.close(), r.close()]);
  }
}

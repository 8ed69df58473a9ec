// Resume skips finished work: a merge killed (SIGKILL) once N batches are in
// its journal, run again, moves only what the journal does not cover, and ends
// with the same bytes and meta-data as an uninterrupted merge.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import fc from 'fast-check';
import { Extent, intersect, totalBytes } from '../../lib/device/extent';
import { clipBelow } from '../../lib/resync/merge';
import { splitBrainStates } from '../../scripts/split-brain';
import { requires } from '../helpers/env';
import { Pair, drbdmetaView, overlay, readRange, setupPair } from '../helpers/pair';

const ROOT = path.join(__dirname, '..', '..');
const MiB = 1 << 20;

describe('clipBelow: the part of a lane a resume still has to do', () => {
  const cases: Array<[string, Extent[], number, Extent[]]> = [
    ['nothing done', [[0, 10], [20, 10]], 0, [[0, 10], [20, 10]]],
    ['a negative offset is nothing done', [[0, 10]], -5, [[0, 10]]],
    ['an extent ending exactly at the offset is done', [[0, 10], [20, 10]], 10, [[20, 10]]],
    ['an extent straddling the offset keeps its upper part', [[0, 10], [20, 10]], 25, [[25, 5]]],
    ['an offset in a gap drops what lies below', [[0, 10], [20, 10]], 15, [[20, 10]]],
    ['an extent starting at the offset stays whole', [[0, 10], [20, 10]], 20, [[20, 10]]],
    ['everything done', [[0, 10], [20, 10]], Number.MAX_SAFE_INTEGER, []],
    ['no extents', [], 7, []],
  ];
  for (const [name, extents, below, expected] of cases) {
    it(name, () => assert.deepEqual(clipBelow(extents, below), expected));
  }

  it('equals the intersection with [below, ∞) for any sorted, coalesced extents (as a plan\'s lanes are)', () => {
    // Gaps of at least one byte between extents (the first may start at 0): adjacent extents
    // never reach clipBelow, and intersect() would join them.
    const sorted = fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 100 })), { maxLength: 20 }).map((gaps) => {
      let pos = 0;
      return gaps.map(([g, len], i): Extent => {
        const gap = i === 0 ? g - 1 : g;
        const e: Extent = [pos + gap, len];
        pos += gap + len;
        return e;
      });
    });
    fc.assert(fc.property(sorted, fc.integer({ min: -10, max: 60000 }), (extents, below) => {
      const expected = [...intersect(extents, [[Math.max(0, below), Number.MAX_SAFE_INTEGER - Math.max(0, below)]])];
      assert.deepEqual(clipBelow(extents, below), expected);
    }));
  });
});

interface ChildRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  report?: { outcome: string; resumed: boolean; movedToPeerBytes: number; movedToLocalBytes: number; plan: { toPeerBytes: number; toLocalBytes: number } };
}

/** A merge in its own process, journalling after every batch, killed by the failpoint when one is named. */
function mergeInChild(p: Pair, batchBytes: number, env: Record<string, string> = {}): ChildRun {
  const script = `
    const { LocalEndpoint } = require('./lib/resync/local-endpoint');
    const { Merge } = require('./lib/resync/merge');
    (async () => {
      const local = await LocalEndpoint.open(${JSON.stringify(p.local)}, { write: true });
      const peer = await LocalEndpoint.open(${JSON.stringify(p.peer)}, { write: true });
      try {
        const r = await new Merge(local, peer, { journal: ${JSON.stringify(path.join(p.dir, 'journal.json'))}, batchBytes: ${batchBytes}, concurrency: 2, journalIntervalMs: 0 }).run();
        process.stdout.write(JSON.stringify(r));
      } finally {
        await Promise.all([local.close(), peer.close()]);
      }
    })().catch((e) => { console.error(e); process.exit(2); });`;
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, signal: r.signal, stderr: r.stderr, report: r.status === 0 ? JSON.parse(r.stdout) : undefined };
}

describe('resume: a merge killed after N journaled batches', function () {
  let p: Pair | undefined;
  afterEach(() => {
    p?.cleanup();
    p = undefined;
  });

  it('moves only the batches the journal does not cover, and ends exact', async function () {
    requires(this, 'drbdmeta');
    // Whole-MiB writes and 1 MiB batches: every batch is exactly 1 MiB, in both lanes.
    const localWrites: Extent[] = [[0, 6 * MiB], [7 * MiB, 2 * MiB]];
    const peerWrites: Extent[] = [[12 * MiB, 7 * MiB]];
    p = await setupPair(24 * MiB, { ...splitBrainStates(localWrites, peerWrites), commonData: true });
    const total = totalBytes(localWrites) + totalBytes(peerWrites);
    const n = 1 + Math.floor(Math.random() * (total / MiB - 2));

    const killed = mergeInChild(p, MiB, { DRBD_BISYNC_FAILPOINT: 'after-journaled-batches', DRBD_BISYNC_FAILPOINT_COUNT: String(n) });
    assert.equal(killed.signal, 'SIGKILL', `merge was not killed after ${n} batches: ${killed.stderr}`);
    assert.equal(drbdmetaView(p.local).bitsSet, totalBytes(localWrites) / 4096, 'no finalize happened before the kill');

    const rerun = mergeInChild(p, MiB);
    assert.equal(rerun.status, 0, rerun.stderr);
    const r = rerun.report!;
    assert.equal(r.outcome, 'merged');
    assert.equal(r.resumed, true);
    assert.equal(r.plan.toPeerBytes + r.plan.toLocalBytes, total, 'the rerun plans the whole merge');
    assert.equal(r.movedToPeerBytes + r.movedToLocalBytes, total - n * MiB, `the rerun skips the ${n} journaled batches`);

    const expected = overlay(p.before.local, p.before.peer, peerWrites);
    assert.ok(readRange(p.local, 0, p.dataSize).equals(expected), 'local data is the exact merge');
    assert.ok(readRange(p.peer, 0, p.dataSize).equals(expected), 'peer data is the exact merge');
    const [a, b] = [drbdmetaView(p.local), drbdmetaView(p.peer)];
    assert.equal(a.current, b.current);
    assert.deepEqual([a.bitmap, b.bitmap, a.bitsSet, b.bitsSet], ['0000000000000000', '0000000000000000', 0, 0]);
  });
});

// Verification as batches land: through an agent with data streams, each
// batch's digest as sent is checked against the digest of what the
// destination read back from its device after writing it, so the merge needs
// no second pass that reads both sides. A batch that reads back different
// fails the merge with ERR_VERIFY before the journal counts it; the rerun
// resumes and verifies at the end what it skipped.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Extent } from '../../lib/device/extent';
import { native } from '../../lib/native/binding';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { Merge, MergeOptions, MergeReport } from '../../lib/resync/merge';
import { ResyncAgent, connectPeer } from '../../lib/transport';
import { randomRanges, splitBrainStates } from '../../scripts/split-brain';
import { Pair, overlay, readRange, setupPair } from '../helpers/pair';

const SIZE = 24 << 20;
const PSK = randomBytes(32);

type RecvExtents = (...args: unknown[]) => Promise<{ digest?: Buffer }>;
const bulk = (native as unknown as { bulk: { recvExtents: RecvExtents } }).bulk;

/** A merge with the peer behind an in-process agent; counts the per-block hash requests of each side. */
async function mergeThroughAgent(p: Pair, opts: MergeOptions): Promise<{ report: MergeReport; hashes: number }> {
  const local = await LocalEndpoint.open(p.local, { write: true });
  const peerLocal = await LocalEndpoint.open(p.peer, { write: true });
  let hashes = 0;
  for (const ep of [local, peerLocal]) {
    const hash = ep.hash.bind(ep);
    ep.hash = (x: Extent[], bs: number) => (hashes++, hash(x, bs));
  }
  const agent = new ResyncAgent({ endpoint: peerLocal, psk: PSK, listen: { host: '127.0.0.1', port: 0 } });
  const { port } = await agent.listen();
  const peer = await connectPeer({ host: '127.0.0.1', port, psk: PSK, streams: 2 });
  try {
    return { report: await new Merge(local, peer, { journal: path.join(p.dir, 'journal.json'), batchBytes: 256 << 10, journalIntervalMs: 0, ...opts }).run(), hashes };
  } finally {
    await peer.close();
    await agent.close();
    await Promise.all([local.close(), peerLocal.close()]);
  }
}

describe('merge: batches verified as they land (peer through the agent, data streams)', function () {
  this.timeout(60_000);
  let p: Pair | undefined;
  let a: Extent[];
  let b: Extent[];
  const restore = bulk.recvExtents;
  beforeEach(async () => {
    a = randomRanges(SIZE / 2, 12, 16);
    b = randomRanges(SIZE - (1 << 20), 12, 16, a);
    p = await setupPair(SIZE, splitBrainStates(a, b));
  });
  afterEach(() => {
    bulk.recvExtents = restore;
    p?.cleanup();
    p = undefined;
  });
  const expected = (): Buffer => overlay(overlay(p!.before.local, p!.before.peer, b), p!.before.local, a);
  const total = (): number => [...a, ...b].reduce((n, e) => n + e[1], 0);

  it('checks every moved byte without a second pass over either device', async () => {
    const { report, hashes } = await mergeThroughAgent(p!, {});
    assert.equal(report.outcome, 'merged', report.message);
    assert.deepEqual(report.verification, { mode: 'changed', checkedBytes: total(), ok: true });
    assert.equal(hashes, 0, 'no per-block hashing of either side after the transfer');
    assert.ok(readRange(p!.local, 0, p!.dataSize).equals(expected()));
    assert.ok(readRange(p!.peer, 0, p!.dataSize).equals(expected()));
  });

  it('--verify full still reads both whole devices at the end', async () => {
    const { report, hashes } = await mergeThroughAgent(p!, { verify: 'full' });
    assert.equal(report.verification?.checkedBytes, p!.dataSize);
    assert.ok(hashes > 0);
  });

  it('a batch that reads back different fails with ERR_VERIFY before the journal counts it; the rerun completes and checks what it skipped', async () => {
    // The third batch written on either node "reads back" different, as after a lost write.
    let calls = 0;
    bulk.recvExtents = async (...args: unknown[]) => {
      const r = await restore(...args);
      if (++calls === 3 && r.digest) r.digest[0] ^= 1;
      return r;
    };
    await assert.rejects(mergeThroughAgent(p!, {}), (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, 'ERR_VERIFY', e.message);
      assert.match(e.message, /verification failed: the \d+ bytes written to .* between offsets \d+ and \d+ read back different from what was sent; meta-data left untouched/);
      assert.match(e.hint ?? '', /resumes from its journal/);
      return true;
    });
    bulk.recvExtents = restore;
    const { report, hashes } = await mergeThroughAgent(p!, {});
    assert.equal(report.outcome, 'merged', report.message);
    assert.equal(report.resumed, true);
    assert.deepEqual(report.verification, { mode: 'changed', checkedBytes: total(), ok: true });
    assert.ok(hashes > 0, 'the batches the first run journalled are verified at the end of the rerun');
    assert.ok(readRange(p!.local, 0, p!.dataSize).equals(expected()));
    assert.ok(readRange(p!.peer, 0, p!.dataSize).equals(expected()));
  });
});

// Verification as batches land: through an agent with data streams, the
// receiving side reads each batch back from its device after writing it and
// compares it with what arrived (the bytes the AES-GCM tag vouched for, i.e.
// the sender's), so the merge needs no second pass that reads both sides. A
// batch that reads back different fails the merge with ERR_VERIFY before the
// journal counts it; the rerun resumes and verifies at the end what it skipped.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
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

type RecvExtents = (...args: unknown[]) => Promise<unknown>;
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
    a = randomRanges(SIZE / 2, 40, 32);
    b = randomRanges(SIZE - (1 << 20), 40, 32, a);
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
    // The twelfth batch written on either node goes to a device that loses it (/dev/zero reads back zeros).
    const lossy = fs.openSync('/dev/zero', 'r+');
    let calls = 0;
    bulk.recvExtents = (sock, key, seq, id, fd, ...rest) => restore(sock, key, seq, id, ++calls === 12 ? lossy : fd, ...rest);
    try {
      await assert.rejects(mergeThroughAgent(p!, {}), (e: Error & { code?: string; hint?: string }) => {
        assert.equal(e.code, 'ERR_VERIFY', e.message);
        assert.match(e.message, /verification failed: a batch written to '.*' read back different \(.*other bytes than were written, first at offset \d+.*\); meta-data left untouched/);
        assert.match(e.hint ?? '', /resumes from its journal/);
        return true;
      });
    } finally {
      bulk.recvExtents = restore;
      fs.closeSync(lossy);
    }
    const journal = JSON.parse(fs.readFileSync(path.join(p!.dir, 'journal.json'), 'utf8')) as { doneBelow: Record<string, number> };
    assert.ok(journal.doneBelow.toPeer > 0 || journal.doneBelow.toLocal > 0, `the first run journalled batches before the failure: ${JSON.stringify(journal.doneBelow)}`);
    const { report, hashes } = await mergeThroughAgent(p!, {});
    assert.equal(report.outcome, 'merged', report.message);
    assert.equal(report.resumed, true);
    assert.deepEqual(report.verification, { mode: 'changed', checkedBytes: total(), ok: true });
    assert.ok(hashes > 0, 'the batches the first run journalled are verified at the end of the rerun');
    assert.ok(readRange(p!.local, 0, p!.dataSize).equals(expected()));
    assert.ok(readRange(p!.peer, 0, p!.dataSize).equals(expected()));
  });
});

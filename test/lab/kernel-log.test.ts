// The lab's reading of DRBD's kernel log: the evidence the e2e scenarios use
// for "the reconnect resynced nothing" and for the kernel's UUID decision.
// Recorded on the lab's DRBD 8.4.11 nodes.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { kernelDecision, parseConnectLog } from '../../scripts/drbd-lab/kernel-log';
import { parseProcDrbd } from '../../scripts/drbd-lab/drbd';

const log = (f: string) => parseConnectLog(
  fs.readFileSync(path.join(__dirname, '../fixtures/status/kernel-log', f), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')),
);

describe('drbd-lab: DRBD kernel log of a connect', () => {
  it('a reconnect with equal UUIDs: in sync by rule 40, no bit set on either side, no resync', () => {
    const l = log('lab-8.4-reconnect-in-sync-nodea.txt');
    assert.equal(l.handshakes.length, 1);
    const [h] = l.handshakes;
    assert.deepEqual([h.result, h.rule], ['0', '40']);
    assert.deepEqual(h.self, { uuids: ['DD78B66EEEF864D0', '0000000000000000', '0000000000000000', '0000000000000000'], bits: 0, flags: 0 });
    assert.deepEqual(h.peer?.uuids[0], 'DD78B66EEEF864D0');
    assert.deepEqual(kernelDecision(h), { verdict: 'in-sync', rule: 40, fullSync: false });
    assert.deepEqual([l.resyncs, l.leftoverBits, l.splitBrain], [[], [], []]);
  });

  it('the initial sync: rule 10 with leftover bits, then a full sync (rule 30) that began as SyncSource', () => {
    const l = log('lab-8.4-resync-nodea.txt');
    assert.deepEqual(l.handshakes.map((h) => [h.result, h.rule]), [['0', '10'], ['2', '30']]);
    assert.equal(l.handshakes[1].self?.bits, 16374);
    assert.deepEqual(kernelDecision(l.handshakes[1]), { verdict: 'local-ahead', rule: 30, fullSync: true });
    assert.deepEqual(l.leftoverBits.length, 1);
    assert.equal(l.resyncs.length, 3, l.resyncs.join('\n')); // -> WFBitMapS, -> SyncSource, Began resync
    assert.match(l.resyncs[2], /Began resync as SyncSource \(will sync 65496 KB/);
  });

  it('a split brain: 100 by rule 90 on both nodes, and "Split-Brain detected"', () => {
    for (const f of ['lab-8.4-split-brain-nodea.txt', 'lab-8.4-split-brain-nodeb.txt']) {
      const l = log(f);
      assert.deepEqual(l.handshakes.map((h) => kernelDecision(h)), [{ verdict: 'split-brain', rule: 90, fullSync: false }], f);
      assert.equal(l.splitBrain.length, 1, f);
      assert.deepEqual(l.resyncs, [], f);
    }
  });

  it('unrelated data: -1000, logged with the last rule tried (100)', () => {
    const [h] = log('lab-8.4-unrelated-nodea.txt').handshakes;
    assert.deepEqual([h.result, h.rule], ['-1000', '100']);
    assert.deepEqual(kernelDecision(h), { verdict: 'unrelated', rule: 100, fullSync: false });
  });

  it('maps every other 8.4 result by its sign and size, and refuses one it does not model', () => {
    const at = (result: string, rule: string) => kernelDecision({ result, rule, line: `uuid_compare()=${result} by rule ${rule}` });
    assert.deepEqual(at('1', '70'), { verdict: 'local-ahead', rule: 70, fullSync: false });
    assert.deepEqual(at('-1', '50'), { verdict: 'peer-ahead', rule: 50, fullSync: false });
    assert.deepEqual(at('-2', '60'), { verdict: 'peer-ahead', rule: 60, fullSync: true });
    assert.deepEqual(at('-100', '100'), { verdict: 'history-split-brain', rule: 100, fullSync: false });
    assert.throws(() => at('-1091', '34'), /-1091 \(rule 34\) is not a decision the classifier models/);
    assert.throws(() => at('no-sync', 'both-off'), /not a DRBD 8\.4 uuid_compare\(\) line/);
  });

  it('DRBD 9 lines: the strategy and rule names, and a resync shown by repl( -> Sync... )', () => {
    // Shaped after DRBD 9's messages (uuid_compare()=<strategy> by rule=<name>, repl( A -> B )).
    const l = parseConnectLog([
      'drbd r0/0 drbd0 nodeb: drbd_sync_handshake:',
      'drbd r0/0 drbd0 nodeb: self 5A0C1E0A4C6D31B4:0000000000000000:0000000000000000:0000000000000000 bits:0 flags:120',
      'drbd r0/0 drbd0 nodeb: peer 5A0C1E0A4C6D31B4:0000000000000000:0000000000000000:0000000000000000 bits:0 flags:120',
      'drbd r0/0 drbd0 nodeb: uuid_compare()=no-sync by rule=both-off',
      'drbd r0/0 drbd0 nodeb: repl( Off -> Established ) [connected]',
      'drbd r0/0 drbd0 nodeb: repl( Established -> WFBitMapS )',
      'drbd r0/0 drbd0 nodeb: repl( WFBitMapS -> SyncSource )',
    ]);
    assert.deepEqual(l.handshakes.map((h) => [h.result, h.rule, h.self?.flags]), [['no-sync', 'both-off', 0x120]]);
    assert.equal(l.resyncs.length, 2);
  });
});

describe('drbd-lab: /proc/drbd counters', () => {
  it('reads ns, nr and dw (KiB since up) beside oos', () => {
    const dir = path.join(__dirname, '../fixtures/status/proc-drbd');
    const s = parseProcDrbd(fs.readFileSync(path.join(dir, 'synctarget-secondary.txt'), 'utf8'));
    assert.deepEqual([s.ns, s.nr, s.dw, s.oos], [0, 4944, 4944, 126088]);
    const p = parseProcDrbd(fs.readFileSync(path.join(dir, 'connected-primary-uptodate.txt'), 'utf8'));
    assert.deepEqual([p.ns, p.nr, p.dw, p.oos], [131032, 0, 0, 0]);
  });
});

// `drbdsetup events2` parsing: drbd-utils' own test output (DRBD 9) and the
// lab's recordings from the real 8.4 kernel.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventsState, parseEvents2, parseEvents2Line } from '../../lib/status/events2';

const read = (f: string): string => fs.readFileSync(path.join(__dirname, '../fixtures/status/events2', f), 'utf8');

describe('status: events2', () => {
  it('drbd-utils events2-sync: StandAlone, then Connected SyncSource at 37.5% with 2500 KiB out of sync', () => {
    const { resources } = parseEvents2(read('sync-statistics.txt'));
    assert.equal(resources.length, 1);
    const r = resources[0];
    assert.deepEqual(
      [r.name, r.minor, r.role, r.disk, r.connection, r.peerRole, r.peerDisk, r.outOfSyncBytes],
      ['some-resource', 1000, 'Secondary', 'UpToDate', 'SyncSource', 'Secondary', 'Inconsistent', 2500 * 1024],
    );
    assert.deepEqual(r.syncProgress, { percent: 37.5, remainingBytes: 2500 * 1024, etaSeconds: 10 });
    assert.deepEqual(r.peers.map((p) => [p.name, p.nodeId, p.volumes[0].replication]), [['some-peer', 1, 'SyncSource']]);
    assert.equal(r.volumes[0].sizeBytes, 5 * 1024);
    assert.equal(r.splitBrain, false);
  });

  it('the same events without the last change read StandAlone/Diskless, nothing out of sync', () => {
    const text = read('sync-statistics.txt').split('\n').filter((l) => l.startsWith('create') || l.startsWith('exists')).join('\n');
    const [r] = parseEvents2(text).resources;
    assert.deepEqual([r.connection, r.disk, r.peerDisk, r.outOfSyncBytes, r.syncProgress], ['StandAlone', 'Diskless', 'DUnknown', 0, undefined]);
  });

  it('reads --timestamps lines and keeps the time', () => {
    const lines = read('helper-timestamps.txt').split('\n').map(parseEvents2Line).filter((e) => e);
    assert.equal(lines.length, 7);
    assert.equal(lines[0]!.time, '2017-02-15T14:43:16.688437+00:00');
    assert.deepEqual([lines[5]!.action, lines[5]!.object, lines[5]!.fields.helper], ['call', 'helper', 'before-resync-target']);
    // A helper other than split-brain does not mark the resource.
    assert.equal(parseEvents2(read('helper-timestamps.txt')).resources[0].splitBrain, false);
  });

  it('a split-brain helper call marks a StandAlone resource until it connects again', () => {
    const s = new EventsState();
    for (const l of read('helper-timestamps.txt').split('\n')) {
      const ev = parseEvents2Line(l);
      if (ev) s.apply(ev);
    }
    s.apply(parseEvents2Line('call helper name:some-resource peer-node-id:1 conn-name:some-peer volume:0 helper:split-brain')!);
    assert.deepEqual([s.resources()[0].splitBrain, s.resources()[0].splitBrainEvidence], [true, 'helper']);
    s.apply(parseEvents2Line('change connection name:some-resource peer-node-id:1 conn-name:some-peer connection:Connected role:Secondary')!);
    assert.equal(s.resources()[0].splitBrain, false);
  });

  it('destroy removes objects', () => {
    const s = parseEvents2(read('sync-statistics.txt')).state;
    s.apply(parseEvents2Line('destroy peer-device name:some-resource peer-node-id:1 conn-name:some-peer volume:0')!);
    s.apply(parseEvents2Line('destroy connection name:some-resource peer-node-id:1 conn-name:some-peer')!);
    const [r] = s.resources();
    assert.deepEqual([r.peers.length, r.connection, r.outOfSyncBytes], [0, 'StandAlone', 0]);
    s.apply(parseEvents2Line('destroy device name:some-resource volume:0 minor:1000')!);
    s.apply(parseEvents2Line('destroy resource name:some-resource')!);
    assert.deepEqual(s.resources(), []);
  });

  it('8.4 kernel (lab): Connected Primary, and StandAlone with 16 KiB out of sync after the split brain', () => {
    const [c] = parseEvents2(read('lab-8.4-connected-nodea.txt')).resources;
    assert.deepEqual([c.name, c.minor, c.role, c.peerRole, c.connection, c.disk, c.peerDisk, c.outOfSyncBytes], ['r0', 0, 'Primary', 'Secondary', 'Connected', 'UpToDate', 'UpToDate', 0]);
    const [s] = parseEvents2(read('lab-8.4-split-brain-nodea.txt')).resources;
    assert.deepEqual([s.role, s.peerRole, s.connection, s.disk, s.peerDisk, s.outOfSyncBytes], ['Secondary', 'Unknown', 'StandAlone', 'UpToDate', 'DUnknown', 16 * 1024]);
  });

  it('a drbdtop capture of a SyncSource peer device parses (real --timestamps line)', () => {
    // LINBIT/drbdtop pkg/resource/resource_test.go
    const ev = parseEvents2Line('2017-02-15T14:43:16.688437+00:00 exists peer-device name:test0 conn-name:peer volume:0 replication:SyncSource peer-disk:Inconsistent resync-suspended:no received:0 sent:2050743348 out-of-sync:205655500 pending:0 unacked:0')!;
    assert.deepEqual([ev.action, ev.object, ev.fields.name, ev.fields['out-of-sync']], ['exists', 'peer-device', 'test0', '205655500']);
  });

  it('an unknown action is an error naming the line; the end marker and comments are skipped', () => {
    assert.throws(() => parseEvents2Line('frobnicate resource name:x'), /unknown action 'frobnicate' in line 'frobnicate resource name:x'/);
    assert.equal(parseEvents2Line('exists -'), undefined);
    assert.equal(parseEvents2Line('# a comment'), undefined);
  });
});

// /proc/drbd parsing on real output: the lab's DRBD 8.4.11 recordings and
// published examples (each fixture names its source in its first line).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseProcDrbd, resourcesFromProc } from '../../lib/status/proc-drbd';
import { namesFromDrbdsetupShow } from '../../lib/status/status';

const DIR = path.join(__dirname, '../fixtures/status/proc-drbd');
const read = (f: string): string => fs.readFileSync(path.join(DIR, f), 'utf8');
const KiB = 1024;

// [file, minor, cs, role/peer, disk/peerDisk, oos KiB, protocol]
const ONE_DEVICE: Array<[string, number, string, string, string, number, string | undefined]> = [
  ['wfconnection-inconsistent.txt', 0, 'WFConnection', 'Secondary/Unknown', 'Inconsistent/DUnknown', 131032, 'C'],
  ['connected-inconsistent.txt', 0, 'Connected', 'Secondary/Secondary', 'Inconsistent/Inconsistent', 131032, 'C'],
  ['connected-primary-uptodate.txt', 0, 'Connected', 'Primary/Secondary', 'UpToDate/UpToDate', 0, 'C'],
  ['connected-secondary-uptodate.txt', 0, 'Connected', 'Secondary/Primary', 'UpToDate/UpToDate', 0, 'C'],
  ['connected-secondary-secondary.txt', 0, 'Connected', 'Secondary/Secondary', 'UpToDate/UpToDate', 0, 'C'],
  ['diskless.txt', 0, 'Connected', 'Secondary/Secondary', 'Diskless/UpToDate', 0, 'C'],
  ['connected-peer-diskless.txt', 0, 'Connected', 'Secondary/Secondary', 'UpToDate/Diskless', 0, 'C'],
  ['wfconnection-uptodate.txt', 0, 'WFConnection', 'Secondary/Unknown', 'UpToDate/DUnknown', 0, 'C'],
  ['standalone-primary-disconnected.txt', 0, 'StandAlone', 'Primary/Unknown', 'UpToDate/DUnknown', 0, undefined],
  ['standalone-primary-oos.txt', 0, 'StandAlone', 'Primary/Unknown', 'UpToDate/DUnknown', 16, undefined],
  ['standalone-split-brain.txt', 0, 'StandAlone', 'Secondary/Unknown', 'UpToDate/DUnknown', 16, undefined],
  ['standalone-split-brain-peer.txt', 0, 'StandAlone', 'Secondary/Unknown', 'UpToDate/DUnknown', 16, undefined],
  ['public-standalone-split-brain-8.4.0-node1.txt', 0, 'StandAlone', 'Secondary/Unknown', 'UpToDate/DUnknown', 76, undefined],
  ['public-standalone-split-brain-8.4.0-node2.txt', 0, 'StandAlone', 'Primary/Unknown', 'UpToDate/DUnknown', 100, undefined],
  ['public-standalone-primary-8.4.6.txt', 1, 'StandAlone', 'Primary/Unknown', 'UpToDate/Inconsistent', 40448716, undefined],
  ['public-wfconnection-8.4.11.txt', 0, 'WFConnection', 'Secondary/Unknown', 'Inconsistent/DUnknown', 10481308, 'C'],
  ['public-connected-8.4.5.txt', 1, 'Connected', 'Secondary/Secondary', 'UpToDate/UpToDate', 0, 'C'],
];

describe('status: /proc/drbd', () => {
  for (const [file, minor, cs, ro, ds, oosKiB, protocol] of ONE_DEVICE) {
    // A recording that is missing fails here (readFileSync): it is the evidence, not optional.
    it(`${file}: ${cs} ${ro} ${ds}`, () => {
      const p = parseProcDrbd(read(file));
      assert.equal(p.api, 1);
      assert.match(p.version!, /^8\.4\.\d+/);
      assert.equal(p.devices.length, 1);
      const d = p.devices[0];
      assert.deepEqual([d.minor, d.connection, `${d.role}/${d.peerRole}`, `${d.disk}/${d.peerDisk}`, d.outOfSyncBytes, d.protocol], [minor, cs, ro, ds, oosKiB * KiB, protocol]);
      assert.equal(d.syncProgress, undefined);
      const [r] = resourcesFromProc(p);
      assert.equal(r.name, `minor-${minor}`);
      assert.equal(r.connection, cs);
      assert.equal(r.outOfSyncBytes, oosKiB * KiB);
      assert.equal(r.peers[0].volumes[0].replication, cs === 'Connected' ? 'Established' : 'Off');
    });
  }

  const SYNC: Array<[string, string, number, number, number, number]> = [
    // file, cs, percent, left, total (bytes), eta seconds
    ['syncsource-primary.txt', 'SyncSource', 3.2, 127960 * KiB, 131032 * KiB, 39],
    ['synctarget-secondary.txt', 'SyncTarget', 6.3, 126088 * KiB, 131032 * KiB, 24],
    ['public-synctarget-8.4.11.txt', 'SyncTarget', 3.1, 31784 * KiB * KiB, 32764 * KiB * KiB, 14 * 60 + 1],
    ['public-syncsource-8.4.0.txt', 'SyncSource', 57.3, 1121600 * KiB, 2613068 * KiB, 32],
  ];
  for (const [file, cs, percent, left, total, eta] of SYNC) {
    it(`${file}: ${cs} at ${percent}% with remaining, total and ETA`, () => {
      const p = parseProcDrbd(read(file));
      const d = p.devices[0];
      assert.equal(d.connection, cs);
      assert.equal(d.progressKind, 'sync');
      assert.deepEqual(d.syncProgress, { percent, remainingBytes: left, totalBytes: total, etaSeconds: eta });
      const [r] = resourcesFromProc(p, new Map([[d.minor, ['r0', 0]]]));
      assert.equal(r.name, 'r0');
      assert.deepEqual(r.syncProgress, d.syncProgress);
      assert.equal(r.peers[0].volumes[0].replication, cs);
    });
  }

  it('unconfigured minors and a module with no resources give no devices', () => {
    for (const f of ['unconfigured.txt', 'unconfigured-after-down.txt']) {
      const p = parseProcDrbd(read(f));
      assert.equal(p.version, '8.4.11');
      assert.deepEqual(p.devices, []);
    }
    const p = parseProcDrbd(read('public-diskless-unconfigured-8.3.7.txt'));
    assert.equal(p.api, 88);
    assert.deepEqual(p.devices.map((d) => [d.minor, d.connection, d.disk]), [[0, 'WFConnection', 'Diskless']]);
  });

  it('groups minors of one resource into volumes by name', () => {
    const text = `version: 8.4.11 (api:1/proto:86-101)\n${read('connected-primary-uptodate.txt').split('\n').slice(2).join('\n').replace(/^ 0:/m, ' 3:')}${read('syncsource-primary.txt').split('\n').slice(2).join('\n').replace(/^ 0:/m, ' 4:')}`;
    const p = parseProcDrbd(text);
    assert.deepEqual(p.devices.map((d) => d.minor), [3, 4]);
    const [r] = resourcesFromProc(p, new Map([[3, ['r1', 0]], [4, ['r1', 1]]]));
    assert.deepEqual(r.minors, [3, 4]);
    assert.equal(r.minor, 3);
    assert.equal(r.connection, 'Connected'); // the summary is the first volume's
    assert.equal(r.outOfSyncBytes, 127960 * KiB); // summed over volumes
    assert.equal(r.syncProgress?.percent, 3.2);
  });

  it('maps minors to resources from `drbdsetup show` (8.4 output from the lab)', () => {
    const show = `resource r0 {\n    options {\n    }\n    _this_host {\n        address\t\t\tipv4 169.254.0.1:7789;\n        volume 0 {\n            device\t\t\tminor 0;\n            disk\t\t\t"/dev/vda";\n        }\n        volume 1 {\n            device\t\t\tminor 7;\n        }\n    }\n}\nresource r2 {\n    _this_host {\n        volume 0 {\n            device minor 2;\n        }\n    }\n}\n`;
    assert.deepEqual([...namesFromDrbdsetupShow(show)], [[0, ['r0', 0]], [7, ['r0', 1]], [2, ['r2', 0]]]);
  });
});

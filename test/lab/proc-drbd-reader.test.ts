// The lab's own /proc/drbd reader, against the recordings the lab made.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isSynced, parseProcDrbd } from '../../scripts/drbd-lab/drbd';

const dir = path.resolve(__dirname, '../fixtures/status/proc-drbd');
const read = (name: string) => parseProcDrbd(fs.readFileSync(path.join(dir, `${name}.txt`), 'utf8'));

describe('drbd-lab: parseProcDrbd on recorded /proc/drbd', () => {
  it('reads connection state, roles, disk states and out-of-sync KiB', () => {
    assert.deepEqual(
      (({ cs, ro, ds, oos }) => ({ cs, ro, ds, oos }))(read('connected-primary-uptodate')),
      { cs: 'Connected', ro: 'Primary/Secondary', ds: 'UpToDate/UpToDate', oos: 0 },
    );
    const sync = read('synctarget-secondary');
    assert.equal(sync.cs, 'SyncTarget');
    assert.equal(sync.ds, 'Inconsistent/UpToDate');
    assert.ok(sync.oos! > 0);
    assert.equal(read('standalone-primary-oos').oos, 16);
  });

  it('says Unconfigured when minor 0 is not there', () => {
    assert.equal(read('unconfigured').cs, 'Unconfigured');
    assert.equal(read('unconfigured-after-down').cs, 'Unconfigured');
  });

  it('calls only Connected UpToDate/UpToDate with oos:0 synced', () => {
    const synced = fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4)).filter((n) => isSynced(read(n)));
    assert.deepEqual(synced.sort(), ['connected-primary-uptodate', 'connected-secondary-secondary', 'connected-secondary-uptodate']);
  });
});

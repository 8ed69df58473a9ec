// --resource: devices from the DRBD configuration through drbdadm's sh-* commands,
// checked against the real drbdadm with a written configuration file.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDump, parseMetaIndex, pickVolume, resolveResource } from '../../lib/drbd/resource';
import { requires, tmpDir } from '../helpers/env';

const host = os.hostname();

function config(dir: string): string {
  const file = path.join(dir, 'test.conf');
  fs.writeFileSync(file, `resource r0 {
  protocol C;
  device /dev/drbd3 minor 3;
  disk /dev/vg0/r0-backing;
  meta-disk internal;
  net { csums-alg md5; }
  on ${host} { address 10.0.0.1:7789; }
  on other-node { address 10.0.0.2:7789; }
}
resource r1 {
  device minor 5;
  disk /dev/sdb1;
  meta-disk /dev/sdc1 [2];
  on ${host} { address 10.0.0.1:7790; }
  on other-node { address 10.0.0.2:7790; }
}
resource r2 {
  volume 0 { device /dev/drbd7; disk /dev/sdd; meta-disk /dev/sde; }
  volume 1 { device /dev/drbd8; disk /dev/sdf; meta-disk internal; }
  on ${host} { address 10.0.0.1:7791; }
  on other-node { address 10.0.0.2:7791; }
}
`);
  return file;
}

describe('drbd: resolveResource (drbdadm sh-* over a configuration file)', function () {
  let dir: string;
  let conf: string;
  before(function () {
    dir = tmpDir();
    conf = config(dir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('internal meta-data: backing = meta-data device, minor, device, csums-alg and the peer\'s name', async function () {
    requires(this, 'drbdadm');
    const r = await resolveResource('r0', { config: conf });
    assert.deepEqual(r.volumes, [{ device: '/dev/drbd3', minor: 3, backing: '/dev/vg0/r0-backing', metaDevice: '/dev/vg0/r0-backing', metaIndex: 'internal' }]);
    assert.equal(r.csumsAlg, 'md5');
    assert.deepEqual(r.peers, ['other-node']);
  });

  it('indexed external meta-data, and a resource without csums-alg', async function () {
    requires(this, 'drbdadm');
    const r = await resolveResource('r1', { config: conf });
    assert.deepEqual(r.volumes, [{ device: '/dev/drbd5', minor: 5, backing: '/dev/sdb1', metaDevice: '/dev/sdc1', metaIndex: 2 }]);
    assert.equal(r.csumsAlg, null);
  });

  it('two volumes (flexible external and internal): --volume picks one, none is refused by name', async function () {
    requires(this, 'drbdadm');
    const r = await resolveResource('r2', { config: conf });
    assert.equal(r.volumes.length, 2);
    assert.deepEqual(pickVolume(r, 0), { device: '/dev/drbd7', minor: 7, backing: '/dev/sdd', metaDevice: '/dev/sde', metaIndex: 'flex' });
    assert.equal(pickVolume(r, 1).metaIndex, 'internal');
    assert.throws(() => pickVolume(r), /resource 'r2' has 2 volumes .*--volume N/);
    assert.throws(() => pickVolume(r, 2), /--volume must be 0 to 1 .*'r2', got 2/);
  });

  it('an unknown resource, a missing file and a bad name are errors naming them', async function () {
    requires(this, 'drbdadm');
    await assert.rejects(resolveResource('nope', { config: conf }), (e: Error & { code?: string }) =>
      e.code === 'ERR_REFUSED' && /resource 'nope'.*'nope' not defined/.test(e.message));
    await assert.rejects(resolveResource('r0', { config: path.join(dir, 'missing.conf') }), /configuration file '.*missing.conf' does not exist \(for resource 'r0'\)/);
    await assert.rejects(resolveResource('r0; rm', { config: conf }), /resource name must be .*"r0; rm"/);
  });

  it('parses sh-md-idx answers and the dump without drbdadm', function () {
    assert.equal(parseMetaIndex('internal', 'r'), 'internal');
    assert.equal(parseMetaIndex('flexible', 'r'), 'flex');
    assert.equal(parseMetaIndex('7', 'r'), 7);
    assert.throws(() => parseMetaIndex('weird', 'r9'), /'r9'.*'weird'/);
    assert.deepEqual(parseDump('resource r {\n on a {\n }\n on b.example {\n }\n net {\n csums-alg sha1;\n }\n}\n', 'a'), { csumsAlg: 'sha1', peers: ['b.example'] });
  });
});

// The hand-back commands for DRBD 8.4 and 9 (checked against drbdadm's own dry
// run with a written configuration), the kernel log's checksum summary, and the
// module version.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checksumResyncFromLog, loadedDrbd, survivorCommands, targetCommands } from '../../lib/drbd/handback';
import { DrbdResource, resolveResource } from '../../lib/drbd/resource';
import { requires, tmpDir } from '../helpers/env';

const r: DrbdResource = {
  name: 'r0',
  volumes: [{ device: '/dev/drbd0', minor: 0, backing: '/dev/vda', metaDevice: '/dev/vda', metaIndex: 'internal' }],
  csumsAlg: null,
  peers: ['nodeb'],
};

describe('drbd: hand-back after an online merge', function () {
  it('8.4: the discarding node attaches without connecting, then connects with --discard-my-data and the csums-alg', () => {
    assert.deepEqual(targetCommands(r, 8, 'md5'), [
      ['new-resource', 'r0'], ['new-minor', 'r0'], ['attach', 'r0'], ['--', '--discard-my-data', '--csums-alg=md5', 'connect', 'r0'],
    ]);
    assert.ok(!targetCommands(r, 8, null).some((c) => c.includes('up') || c.includes('adjust')), 'never `up`/`adjust`: they connect plainly');
  });

  it('8.4: the survivor connects from StandAlone with the same csums-alg, or only sets it while WFConnection', () => {
    assert.deepEqual(survivorCommands(r, 8, 'md5', 'StandAlone'), [['--', '--csums-alg=md5', 'connect', 'r0']]);
    assert.deepEqual(survivorCommands(r, 8, 'md5', 'WFConnection'), [['--', '--csums-alg=md5', 'net-options', 'r0']]);
  });

  it('9: adjust --skip-net, then per connection new-peer (csums-alg), new-path, connect --discard-my-data', () => {
    assert.deepEqual(targetCommands(r, 9, 'sha1'), [
      ['adjust', '--skip-net', 'r0'], ['--', '--csums-alg=sha1', 'new-peer', 'r0:nodeb'], ['new-path', 'r0:nodeb'], ['--', '--discard-my-data', 'connect', 'r0:nodeb'],
    ]);
    assert.deepEqual(survivorCommands(r, 9, 'sha1', 'StandAlone'), [['--', '--csums-alg=sha1', 'net-options', 'r0:nodeb'], ['connect', 'r0:nodeb']]);
    assert.deepEqual(survivorCommands(r, 9, 'sha1', 'Connecting'), [['--', '--csums-alg=sha1', 'net-options', 'r0:nodeb']]);
    assert.throws(() => targetCommands({ ...r, peers: ['b', 'c'] }, 9, null), /'r0' has 2 peers \(b, c\)/);
  });

  it('drbdadm\'s dry run of those commands (8.4 and 9 flavours) runs no plain connect', async function () {
    requires(this, 'drbdadm');
    const dir = tmpDir();
    try {
      const conf = path.join(dir, 'r.conf');
      fs.writeFileSync(conf, `resource r0 {\n device /dev/drbd0 minor 0;\n disk /dev/vda;\n meta-disk internal;\n on ${os.hostname()} { address 10.0.0.1:7789; }\n on nodeb { address 10.0.0.2:7789; }\n}\n`);
      const res = await resolveResource('r0', { config: conf });
      const flavours: Array<[8 | 9, string]> = [[9, 'drbdadm']];
      if (fs.existsSync('/lib/drbd/drbdadm-84')) flavours.push([8, '/lib/drbd/drbdadm-84']);
      for (const [major, bin] of flavours) {
        const out = targetCommands(res, major, 'md5').map((args) =>
          execFileSync(bin, ['-c', conf, '-d', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).join('');
        const connects = out.split('\n').filter((l) => / connect /.test(l));
        assert.equal(connects.length, 1, `${bin}: ${out}`);
        assert.match(connects[0], /--discard-my-data/);
        assert.match(out, /attach /);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the checksum summary of this resource\'s last resync from the kernel log', () => {
    const log = [
      'block drbd1: 10 % had equal checksums, eliminated: 4K; transferred 36K total 40K',
      'block drbd0: 99 % had equal checksums, eliminated: 1K; transferred 1K total 2K',
      'drbd r0: conn( WFConnection -> WFReportParams )',
      'block drbd0: 57 % had equal checksums, eliminated: 8192K; transferred 6144K total 14336K',
    ];
    assert.deepEqual(checksumResyncFromLog(log, 'r0', 0), { eliminatedBytes: 8192 * 1024, transferredBytes: 6144 * 1024, totalBytes: 14336 * 1024 });
    assert.equal(checksumResyncFromLog(log.slice(0, 1), 'r0', 0), null);
  });

  it('tells 8.4 from 9 by /proc/drbd, and says when the module is missing', function () {
    const dir = tmpDir();
    try {
      const f = path.join(dir, 'drbd');
      fs.writeFileSync(f, 'version: 8.4.11 (api:1/proto:86-101)\nsrcversion: x\n');
      assert.deepEqual(loadedDrbd(f), { major: 8, version: '8.4.11' });
      fs.writeFileSync(f, 'version: 9.3.3 (api:2/proto:86-123)\n');
      assert.deepEqual(loadedDrbd(f), { major: 9, version: '9.3.3' });
      assert.throws(() => loadedDrbd(path.join(dir, 'none')), /drbd kernel module is not loaded/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Every hint the CLI prints must fit the error it follows: the operator does
// what the hint says and the error goes away.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BisyncError, ErrorCode } from '../../lib/device/errors';
import { run } from '../../lib/cli/output';
import { versionMismatch } from '../../lib/transport/protocol';
import { cli } from '../helpers/cli';
import { requires, tmpDir } from '../helpers/env';

const hints = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('hint: ')).map((l) => l.slice(6));

describe('cli: hints fit their errors', () => {
  let dir: string;
  before(() => (dir = tmpDir('bisync-hints-')));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a key file readable by others: the hint is chmod 600 FILE, and after it the key is accepted', () => {
    const key = path.join(dir, 'psk');
    fs.writeFileSync(key, `${'ab'.repeat(32)}\n`);
    fs.chmodSync(key, 0o644);
    const serve = (): ReturnType<typeof cli> => cli(['serve', '--device', path.join(dir, 'missing.img'), '--listen', '127.0.0.1:0', '--psk-file', key]);
    const r = serve();
    assert.equal(r.status, 2);
    assert.match(r.stderr, /has mode 0644: readable by group or others/);
    assert.deepEqual(hints(r.stderr), [`chmod 600 ${key}`]);
    fs.chmodSync(key, 0o600);
    // The key passes now; what fails next is the device, with its own hint.
    const again = serve();
    assert.doesNotMatch(again.stderr, /pre-shared key/);
    assert.match(again.stderr, /missing\.img/);
  });

  it('merge --online without --resource: an error naming the option, not a crash', () => {
    const key = path.join(dir, 'online-psk');
    fs.writeFileSync(key, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const r = cli(['merge', '--online', '--device', path.join(dir, 'missing.img'), '--peer', '127.0.0.1:1', '--psk-file', key, '--yes']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--online needs --resource NAME/);
  });

  it('merge --online --resource without --peer: refused by the option, before the kernel\'s resource state is asked', function () {
    requires(this, 'drbdadm');
    const conf = path.join(dir, 'online.conf');
    fs.writeFileSync(conf, `resource r0 {\n  device /dev/drbd3 minor 3;\n  disk ${path.join(dir, 'backing.img')};\n  meta-disk internal;\n` +
      `  on ${os.hostname()} { address 10.0.0.1:7789; }\n  on other-node { address 10.0.0.2:7789; }\n}\n`);
    const r = cli(['merge', '--online', '--resource', 'r0', '--drbd-config', conf, '--peer-device', path.join(dir, 'peer.img'), '--yes']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--online needs --peer HOST:PORT/);
  });

  it('a missing key file: check the --psk-file path, or how to make one', () => {
    const key = path.join(dir, 'nokey');
    const r = cli(['serve', '--device', path.join(dir, 'x.img'), '--listen', '127.0.0.1:0', '--psk-file', key]);
    assert.equal(r.status, 2);
    assert.deepEqual(hints(r.stderr), [`check the --psk-file path, or make a key: openssl rand -hex 32 > ${key}; chmod 600 ${key}`]);
  });

  it('a missing file that is not a device (copy --extents): the hint does not call it a device', () => {
    const img = path.join(dir, 'a.img');
    fs.writeFileSync(img, Buffer.alloc(8192));
    const r = cli(['copy', img, img, '--extents', path.join(dir, 'no-extents.json'), '--yes']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no-extents\.json/);
    for (const h of hints(r.stderr)) assert.doesNotMatch(h, /device|root/);
  });

  it('no DRBD meta-data where inspect looks: the hint names the placement options', () => {
    const img = path.join(dir, 'plain.img');
    fs.writeFileSync(img, Buffer.alloc(1 << 20));
    const r = cli(['inspect', img]);
    assert.equal(r.status, 2);
    assert.deepEqual(hints(r.stderr), ['check the device and the meta-data placement (--meta-device, --meta-index, --flex)']);
  });
});

describe('cli: exit codes of refusals', () => {
  const exitOf = async (e: unknown, refusalsExit1: boolean): Promise<number | string | undefined> => {
    const [saved, write] = [process.exitCode, process.stderr.write];
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await run(false, async () => {
        throw e;
      }, refusalsExit1);
      return process.exitCode;
    } finally {
      process.stderr.write = write;
      process.exitCode = saved;
    }
  };

  it('a protocol version the other node does not speak exits 1 (refused, nothing changed), as the README\'s table says; a broken link stays 2', async () => {
    assert.equal(await exitOf(versionMismatch('agent', 1, 'this client'), true), 1);
    assert.equal(await exitOf(new BisyncError(ErrorCode.PROTOCOL, 'connection to peer lost'), true), 2);
    assert.equal(await exitOf(versionMismatch('agent', 1, 'this client'), false), 2, 'commands without refusals exit 2');
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generatePsk, readPskFile, writePskFile } from '../../lib/transport';
import { TokenBucket } from '../../lib/transport/rate-limit';
import { tmpDir } from '../helpers/env';

describe('transport: pre-shared key files', () => {
  let dir: string;
  before(() => (dir = tmpDir('bisync-psk-')));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, content: string | Buffer, mode = 0o600): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, content);
    fs.chmodSync(p, mode);
    return p;
  };

  it('reads a hex key, ignoring surrounding whitespace', () => {
    const hex = generatePsk();
    assert.match(hex, /^[0-9a-f]{64}$/);
    assert.deepEqual(readPskFile(file('hex', `  ${hex}\n`)), Buffer.from(hex, 'hex'));
  });

  it('reads a raw binary key of 16 bytes or more', () => {
    const raw = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x99, 0xaa]);
    assert.deepEqual(readPskFile(file('raw', raw)), raw);
  });

  it('refuses a key file readable by group or others, naming the file and mode', () => {
    const p = file('open', generatePsk(), 0o644);
    assert.throws(() => readPskFile(p), (e: Error) => e.message.includes(p) && e.message.includes('0644'));
    assert.throws(() => readPskFile(file('group', generatePsk(), 0o640)), /0640/);
  });

  it('refuses empty and short keys, naming the length', () => {
    assert.throws(() => readPskFile(file('empty', '\n')), /is empty/);
    assert.throws(() => readPskFile(file('short-hex', 'abcdef0123')), /10 hex digits \(5 bytes\)/);
    assert.throws(() => readPskFile(file('short-raw', 'not hex!')), /8 bytes/);
    assert.throws(() => readPskFile(path.join(dir, 'missing')), /cannot read pre-shared key file .*missing/);
  });

  it('writes a new 0600 key file and will not overwrite one', () => {
    const p = path.join(dir, 'new.key');
    writePskFile(p);
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    assert.equal(readPskFile(p).length, 32);
    assert.throws(() => writePskFile(p), /EEXIST/);
  });
});

describe('transport: token bucket', () => {
  it('refuses a nonsensical rate, naming it', () => {
    assert.throws(() => new TokenBucket(0), /got 0/);
    assert.throws(() => new TokenBucket(Number.NaN), /NaN/);
  });

  it('paces bytes to the rate (order of magnitude)', async () => {
    const bucket = new TokenBucket(1 << 20);
    const t = performance.now();
    for (let i = 0; i < 8; i++) await bucket.take(128 << 10);
    // 1 MiB at 1 MiB/s: about 1 s less the 50 ms burst; generous lower bound only.
    assert.ok(performance.now() - t >= 500);
  });
});

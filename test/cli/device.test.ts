// drbd-bisync info / diff / copy as an operator runs them: exit codes, one JSON
// document on stdout, nothing on stderr when it is not a terminal.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, cliJson } from '../helpers/cli';
import { makeLoop, requires, tmpDir } from '../helpers/env';

interface DiffDoc {
  identical: boolean;
  blockSize: number;
  differentBytes: number;
  extents: Array<[number, number]>;
}

describe('CLI: info, diff, copy', function () {
  this.timeout(180000); // each CLI run transpiles the sources with ts-node
  let dir: string;
  let a: string;
  let b: string;
  let dataA: Buffer;
  const changed = [3, 4, 5, 100, 255]; // 4 KiB blocks that differ in b
  const p = (name: string): string => path.join(dir, name);

  beforeEach(() => {
    dir = tmpDir();
    dataA = crypto.randomBytes(1 << 20);
    const dataB = Buffer.from(dataA);
    for (const blk of changed) dataB[blk * 4096 + 123] ^= 0xff;
    a = p('a.img');
    b = p('b.img');
    fs.writeFileSync(a, dataA);
    fs.writeFileSync(b, dataB);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('info --json describes a file', () => {
    const r = cliJson(['info', a]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.doc.path, a);
    assert.equal(r.doc.size, 1 << 20);
    assert.equal(r.doc.isBlockDevice, false);
    assert.equal(r.doc.loopBackingFile, null);
    assert.equal(typeof r.doc.direct, 'boolean');
    assert.equal(r.doc.directFallback, r.doc.direct ? null : r.doc.directFallback);
    assert.doesNotMatch(r.stderr, /error/i);
  });

  it('info of a loop device names its backing file (human output)', function () {
    requires(this, 'root', 'losetup');
    const loop = makeLoop(1 << 20, { sectorSize: 4096, dir });
    try {
      const r = cli(['info', loop.device]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /block device \d+:\d+/);
      assert.match(r.stdout, /logical 4096/);
      assert.ok(r.stdout.includes(`loop backing file: ${loop.file}`), r.stdout);
    } finally {
      loop.detach();
    }
  });

  it('info of a missing device exits 2 with one JSON error document and a message naming it', () => {
    const r = cliJson<{ error: { code: string; message: string } }>(['info', p('nope.img')]);
    assert.equal(r.status, 2);
    assert.equal(r.doc.error.code, 'ENOENT');
    assert.ok(r.stderr.includes(p('nope.img')), r.stderr);
  });

  it('diff exits 0 for identical devices and prints exactly the documented JSON', () => {
    const r = cliJson<DiffDoc>(['diff', a, a]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.doc, { identical: true, blockSize: 4096, differentBytes: 0, extents: [] });
    assert.doesNotMatch(r.stderr, /diff\s*\[|%/, 'no progress bar when stderr is not a terminal');
  });

  it('diff exits 1 and lists coalesced, aligned, ascending extents', () => {
    const r = cliJson<DiffDoc>(['diff', a, b]);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(Object.keys(r.doc), ['identical', 'blockSize', 'differentBytes', 'extents']);
    assert.deepEqual(r.doc, {
      identical: false,
      blockSize: 4096,
      differentBytes: 5 * 4096,
      extents: [[3 * 4096, 3 * 4096], [100 * 4096, 4096], [255 * 4096, 4096]],
    });
  });

  it('diff --block-size 64K coarsens the extents; human output lists them', () => {
    const r = cliJson<DiffDoc>(['diff', a, b, '--block-size', '64K']);
    assert.equal(r.status, 1);
    assert.deepEqual(r.doc.extents, [[0, 65536], [6 * 65536, 65536], [15 * 65536, 65536]]);
    const h = cli(['diff', a, b]);
    assert.equal(h.status, 1);
    assert.match(h.stdout, /^12288\t12288$/m);
    assert.match(h.stdout, /20\.0 KiB differ in 3 extent\(s\)/);
  });

  it('diff errors exit 2: bad block size, different sizes', () => {
    const bad = cli(['diff', a, b, '--block-size', '3K']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /block size must be a power of two.*3072/);
    const junk = cli(['diff', a, b, '--block-size', 'lots']);
    assert.equal(junk.status, 2);
    assert.match(junk.stderr, /--block-size must be a number.*'lots'/);
    fs.writeFileSync(p('small.img'), Buffer.alloc(4096));
    const sizes = cliJson(['diff', a, p('small.img')]);
    assert.equal(sizes.status, 2);
    assert.match(sizes.stderr, /1048576 bytes.*4096 bytes/);
  });

  it('diff draws a progress bar on stderr only when stderr is a terminal', function () {
    requires(this, 'script');
    const main = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.ts');
    const cmd = (redirect: string): string =>
      `${process.execPath} -r ts-node/register/transpile-only ${main} diff ${a} ${a} ${redirect}`;
    const errFile = p('stderr.txt');
    const onTty = spawnSync('script', ['-qec', cmd(''), '/dev/null'], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });
    assert.match(onTty.stdout, /diff\s*\[.*\] 100% \| 1\.00 MiB of 1\.00 MiB/);
    const redirected = spawnSync('script', ['-qec', cmd(`2>${errFile}`), '/dev/null'], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });
    assert.match(redirected.stdout, /identical/);
    assert.doesNotMatch(redirected.stdout + fs.readFileSync(errFile, 'utf8'), /diff\s*\[/);
  });

  it('copy refuses to write without --yes when stdin is not a terminal, changing nothing', () => {
    const before = fs.readFileSync(b);
    fs.writeFileSync(p('ext.json'), JSON.stringify([[3 * 4096, 4096]]));
    const r = cli(['copy', a, b, '--extents', p('ext.json')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /without --yes/);
    assert.ok(fs.readFileSync(b).equals(before));
  });

  it('copy --yes of the diff --json output (from stdin) makes the devices identical', () => {
    const d = cli(['diff', a, b, '--json']);
    assert.equal(d.status, 1);
    const r = cli(['copy', a, b, '--extents', '-', '--yes', '--json'], { input: d.stdout });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { copiedBytes: 5 * 4096, extents: 3 });
    assert.ok(fs.readFileSync(b).equals(dataA));
    assert.equal(cli(['diff', a, b]).status, 0);
  });

  it('copy rejects a malformed extent list, naming the entry', () => {
    const before = fs.readFileSync(b);
    fs.writeFileSync(p('bad.json'), JSON.stringify([[0, 4096], [-4096, 4096]]));
    const r = cli(['copy', a, b, '--extents', p('bad.json'), '--yes']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /entry 1 must be \[offsetBytes, lengthBytes\].*\[-4096,4096\]/);
    fs.writeFileSync(p('past.json'), JSON.stringify([[1 << 20, 4096]]));
    const past = cli(['copy', a, b, '--extents', p('past.json'), '--yes']);
    assert.equal(past.status, 2);
    assert.match(past.stderr, /past the end/);
    assert.ok(fs.readFileSync(b).equals(before));
  });
});

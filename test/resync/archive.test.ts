// The conflict archive: what it claims to hold must be there, intact, even
// after a crash mid-append or a disk that fills up mid-write.
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Archive, openArchiveData, readArchiveData, readArchiveIndex } from '../../lib/resync/archive';
import { requires, tmpDir } from '../helpers/env';

const SRC = { side: 'peer' as const, host: 'h', device: '/dev/x' };

describe('archive', () => {
  let dir = '';
  beforeEach(() => {
    dir = tmpDir('bisync-archive-');
  });
  afterEach(() => {
    spawnSync('umount', [dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function entriesWithData(d: string): Buffer[] {
    const fd = openArchiveData(d);
    try {
      return readArchiveIndex(d).map((e) => readArchiveData(d, fd, e));
    } finally {
      fs.closeSync(fd);
    }
  }

  it('keeps entries saved after a crash tore the last index line', () => {
    const first = randomBytes(4096);
    const second = randomBytes(8192);
    let a = Archive.open(dir);
    a.save(SRC, [[0, 4096]], first);
    a.close();
    fs.appendFileSync(path.join(dir, 'index.jsonl'), '{"side":"peer","host":"h","dev'); // torn by a crash
    a = Archive.open(dir);
    a.save(SRC, [[8192, 8192]], second);
    a.close();
    const got = entriesWithData(dir);
    assert.equal(got.length, 2);
    assert.ok(got[0].equals(first) && got[1].equals(second));
  });

  it('fails the save when the disk fills mid-write, never indexing bytes it did not store', function () {
    requires(this, 'root');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', dir]);
    const a = Archive.open(dir);
    try {
      a.save(SRC, [[0, 4096]], randomBytes(4096));
      assert.throws(() => a.save(SRC, [[4096, 16384]], randomBytes(16384)), /ENOSPC/);
    } finally {
      a.close();
    }
    assert.equal(entriesWithData(dir).length, 1, 'only the stored entry is indexed, and it reads back intact');
  });
});

// restore-archive restores one merge at a time: archive entries carry the
// merge's identity, a folder reused by several merges lists them, the newest
// is the default, and a folder mixing entries with and without an identity
// is refused. A folder written before merges had an identity is one merge.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Extent, intersect, subtract, union } from '../../lib/device/extent';
import { Archive, MergeIdentity } from '../../lib/resync/archive';
import { archiveMerges, restoreArchive } from '../../lib/resync/restore';
import { randomRanges, splitBrainStates } from '../../scripts/split-brain';
import { cli, cliJson } from '../helpers/cli';
import { requires, tmpDir } from '../helpers/env';
import { Pair, readRange, setupPair } from '../helpers/pair';

const BLOCK = 4096;
const identity = (id: string, startedAt: string): MergeIdentity => ({
  id, startedAt, local: { current: `${id.toUpperCase().padEnd(15, '0')}2`, bitmap: 'C000000000000000' }, peer: { current: `${id.toUpperCase().padEnd(15, '0')}4`, bitmap: 'C000000000000000' },
});
const A = identity('aaaa', '2026-01-01T00:00:00.000Z');
const B = identity('bbbb', '2026-02-01T00:00:00.000Z');

describe('restore-archive: one merge at a time', () => {
  let dir = '';
  let device = '';
  beforeEach(() => {
    dir = tmpDir('bisync-restore-');
    device = path.join(dir, 'device.img');
    fs.writeFileSync(device, Buffer.alloc(64 * BLOCK));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Saves blocks into the archive folder as merge `merge` (none: an entry without identity). */
  function save(merge: MergeIdentity | undefined, at: number, fill: number): Buffer {
    const data = Buffer.alloc(BLOCK, fill);
    const a = Archive.open(path.join(dir, 'archive'));
    a.save({ side: 'peer', host: 'h', device: '/dev/x', merge }, [[at * BLOCK, BLOCK]], data);
    a.close();
    return data;
  }
  const block = (at: number): Buffer => readRange(device, at * BLOCK, BLOCK);
  const archive = (): string => path.join(dir, 'archive');

  it('lists the merges a folder holds, oldest first, with both nodes\' UUIDs', () => {
    save(A, 1, 0xa1);
    save(A, 5, 0xa5);
    save(B, 1, 0xb1);
    const merges = archiveMerges(archive());
    assert.deepEqual(merges.map((m) => [m.id, m.startedAt, m.entries, m.bytes]), [['aaaa', A.startedAt, 2, 2 * BLOCK], ['bbbb', B.startedAt, 1, BLOCK]]);
    assert.deepEqual(merges[1].uuids, { local: B.local, peer: B.peer });
  });

  it('restores the newest merge by default and nothing of an older one', async () => {
    save(A, 1, 0xa1);
    save(A, 5, 0xa5);
    const b1 = save(B, 1, 0xb1);
    const r = await restoreArchive(archive(), device);
    assert.deepEqual([r.merge, r.entries], ['bbbb', 1]);
    assert.ok(block(1).equals(b1));
    assert.ok(block(5).equals(Buffer.alloc(BLOCK)), 'a block only the older merge archived is left alone');
  });

  it('restores an older merge chosen by id', async () => {
    const a1 = save(A, 1, 0xa1);
    const a5 = save(A, 5, 0xa5);
    save(B, 1, 0xb1);
    const r = await restoreArchive(archive(), device, { merge: 'aaaa' });
    assert.deepEqual([r.merge, r.entries], ['aaaa', 2]);
    assert.ok(block(1).equals(a1) && block(5).equals(a5));
  });

  it('refuses an unknown merge id, naming the ones it holds', async () => {
    save(A, 1, 0xa1);
    await assert.rejects(restoreArchive(archive(), device, { merge: 'cccc' }), (e: Error & { code?: string }) => e.code === 'ERR_REFUSED' && /no merge "cccc" \(merges: aaaa\)/.test(e.message));
  });

  it('refuses a folder mixing entries without an identity and identified merges, writing nothing', async () => {
    save(undefined, 2, 0x02);
    save(A, 1, 0xa1);
    for (const attempt of [() => restoreArchive(archive(), device), () => restoreArchive(archive(), device, { merge: 'aaaa' })]) {
      await assert.rejects(attempt(), (e: Error & { code?: string }) => e.code === 'ERR_REFUSED' && /ambiguous: 1 of its 2 entries were written without a merge identity/.test(e.message));
    }
    assert.throws(() => archiveMerges(archive()), /ambiguous/);
    assert.ok(fs.readFileSync(device).equals(Buffer.alloc(64 * BLOCK)), 'device untouched');
  });

  it('restores a folder written before merges had an identity as one merge, as before', async () => {
    const x = save(undefined, 2, 0x02);
    const y = save(undefined, 7, 0x07);
    assert.deepEqual(archiveMerges(archive()).map((m) => [m.id, m.entries]), [[null, 2]]);
    const r = await restoreArchive(archive(), device);
    assert.deepEqual([r.merge, r.entries], [null, 2]);
    assert.ok(block(2).equals(x) && block(7).equals(y));
  });

  it('a block archived twice by one (resumed) merge gets its first-saved bytes back, and the undo folder reverses the restore', async () => {
    const original = save(A, 3, 0x33);
    save(A, 3, 0x44); // a resumed merge archiving the block again after it wrote the winner's bytes
    const before = fs.readFileSync(device);
    const r = await restoreArchive(archive(), device);
    assert.ok(block(3).equals(original));
    await restoreArchive(r.undo!, device);
    assert.ok(fs.readFileSync(device).equals(before), 'restoring the undo folder brings back what the restore overwrote');
  });
});

describe('restore-archive after two real merges into one folder', function () {
  const pairs: Pair[] = [];
  const archives: string[] = [];
  afterEach(() => {
    pairs.splice(0).forEach((p) => p.cleanup());
    // Removed here, not at the end of each test: a failed assertion would leave them behind.
    for (const d of archives.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const newArchive = (): string => {
    const d = tmpDir('bisync-archive-');
    archives.push(d);
    return path.join(d, 'archive');
  };

  /** A split brain with conflicts, merged with prefer-local into `archive`. */
  async function mergedPair(archive: string): Promise<{ p: Pair; conflicts: Extent[]; uuids: { local: string; peer: string; bitmap: string } }> {
    const a = randomRanges(8 << 20, 10, 4);
    const b: Extent[] = [...union(a.slice(0, 4), randomRanges(20 << 20, 10, 4, a))];
    const p = await setupPair(24 << 20, { ...splitBrainStates(a, b), commonData: true });
    pairs.push(p);
    const [l, r] = [p.local, p.peer].map((d) => cliJson<{ uuids: { current: string; bitmap: string } }>(['inspect', d]).doc.uuids);
    const m = cliJson<{ outcome: string }>(['merge', '--device', p.local, '--peer-device', p.peer, '--yes', '--json', '--journal', path.join(p.dir, 'j.json'), '--on-conflict', 'prefer-local', '--archive', archive]);
    assert.equal(m.doc.outcome, 'merged', m.stderr);
    return { p, conflicts: [...intersect(a, b)], uuids: { local: l.current, peer: r.current, bitmap: l.bitmap } };
  }

  it('lists both merges with their UUIDs and restores each onto its own peer', async function () {
    requires(this, 'drbdmeta');
    const archive = newArchive();
    const first = await mergedPair(archive);
    const second = await mergedPair(archive);
    const list = cliJson<{ merges: Array<{ id: string; uuids: { local: { current: string; bitmap: string }; peer: { current: string } } }> }>(['restore-archive', '--archive', archive, '--list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    const merges = list.doc.merges;
    assert.equal(merges.length, 2);
    assert.deepEqual(merges.map((m) => [m.uuids.local.current, m.uuids.peer.current, m.uuids.local.bitmap]),
      [first, second].map((x) => [x.uuids.local, x.uuids.peer, x.uuids.bitmap]), 'each merge is named by the UUIDs both nodes had before it');

    // Default: the newest merge, onto the second pair's peer; the first merge by id onto the first pair's.
    assert.equal(cli(['restore-archive', '--archive', archive, '--device', second.p.peer, '--yes']).status, 0);
    const byId = cli(['restore-archive', '--archive', archive, '--merge', merges[0].id, '--device', first.p.peer, '--yes']);
    assert.equal(byId.status, 0, byId.stderr);
    for (const { p, conflicts } of [first, second]) {
      const restored = readRange(p.peer, 0, p.dataSize);
      for (const [off, len] of conflicts) assert.ok(restored.subarray(off, off + len).equals(p.before.peer.subarray(off, off + len)), `the peer's own bytes are back at ${off}`);
      // Outside its own conflicts a restore wrote nothing: the other merge's blocks did not land here.
      const merged = readRange(p.local, 0, p.dataSize);
      for (const [off, len] of subtract([[0, p.dataSize]], conflicts)) assert.ok(restored.subarray(off, off + len).equals(merged.subarray(off, off + len)), `untouched at ${off}`);
    }
  });

  it('says which merge it restores, and needs --device unless --list', async function () {
    requires(this, 'drbdmeta');
    const archive = newArchive();
    const { p } = await mergedPair(archive);
    const dry = cliJson<{ merge: string; entries: number }>(['restore-archive', '--archive', archive, '--device', p.peer, '--dry-run', '--json']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.doc.merge, /^[0-9a-f]{12}$/);
    assert.ok(dry.doc.entries > 0);
    const human = cli(['restore-archive', '--archive', archive, '--list']);
    assert.match(human.stdout, new RegExp(`^${dry.doc.merge} \\(newest\\): started `, 'm'));
    assert.equal(cli(['restore-archive', '--archive', archive]).status, 2);
  });
});

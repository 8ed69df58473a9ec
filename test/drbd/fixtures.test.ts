// Meta-data fixtures made by the real drbdmeta and a real DRBD 8.4 kernel,
// read from plain files: runs without root. With drbdmeta installed, the
// crashed primary's AL is also checked against `drbdmeta apply-al`.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { readMetadataAt } from '../../lib/drbd';
import { hasCommand, requires, tmpDir } from '../helpers/env';
import { countBits, drbdmeta, parseDump, wordsToExtents } from './drbdmeta';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'drbd');
const hex = (v: bigint): string => v.toString(16).toUpperCase().padStart(16, '0');

describe('drbd meta-data fixtures', function () {
  this.timeout(60000);
  let dir: string;
  beforeEach(() => (dir = tmpDir('bisync-fix-')));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const name of ['v08-flex', 'v09-flex-4slots']) {
    it(`${name}: matches drbdmeta's dump of it`, async function () {
      const m = parseDump(fs.readFileSync(path.join(FIXTURES, `${name}.dump`), 'utf8'));
      const md = path.join(dir, 'md.img');
      fs.copyFileSync(path.join(FIXTURES, `${name}.md`), md);
      const backing = path.join(dir, 'data.img');
      fs.writeFileSync(backing, '');
      fs.truncateSync(backing, m.laSizeSect * 512);
      const h = await readMetadataAt(backing, { metaDevice: md, index: 'flex' });
      try {
        const r = await h.md.report({ extents: true });
        assert.equal(r.format, m.fmt);
        assert.deepEqual(r.placement, { kind: 'flex-external', metaDevice: md });
        assert.equal(r.laSizeSectors, m.laSizeSect);
        assert.equal(r.laSizeSectors % 8, 3, 'size not a multiple of 4 KiB');
        assert.equal(r.uuids.current, hex(m.current));
        assert.deepEqual(r.uuids.history, m.history.map(hex));
        assert.equal(r.deviceUuid, hex(m.deviceUuid));
        assert.equal(r.clean, true);
        const nBits = Math.ceil(m.laSizeSect / 8);
        if (m.fmt === 'v08') {
          assert.equal(r.uuids.bitmap, hex(m.bitmap));
          assert.equal(r.flags.raw, 0x91);
          assert.equal(r.bitsSet, countBits(m.words[0], nBits));
          assert.deepEqual(r.extents, wordsToExtents(m.words[0], m.laSizeSect, 4096));
        } else {
          assert.equal(r.nodeId, 2);
          assert.equal(h.md.defaultPeer, undefined, 'three peers have slots');
          assert.deepEqual(r.peers!.map((p) => [p.nodeId, p.bitmapIndex, p.flags.raw]), [[0, 1, 0x11], [1, 0, 0x08], [5, 3, 0x10010]]);
          for (const p of r.peers!) {
            assert.equal(p.bitmapUuid, hex(m.peers[p.nodeId].bitmapUuid));
            assert.equal(p.bitsSet, countBits(m.words[p.bitmapIndex], nBits));
            assert.deepEqual(p.extents, wordsToExtents(m.words[p.bitmapIndex], m.laSizeSect, 4096));
          }
          assert.equal(r.peers![0].flags.deviceSeen && r.peers![2].flags.nodeExists, true);
          // No default peer: the top level is the union of the slots.
          const union = new Set<number>();
          for (const p of r.peers!) for (const [o, l] of p.extents!) for (let b = o / 4096; b < Math.ceil((o + l) / 4096); b++) union.add(b);
          assert.equal(r.bitsSet, union.size);
          // Per peer, as drbdmeta get-gi --node-id would show it.
          const r1 = await h.md.report({ peerNodeId: 1 });
          assert.equal(r1.uuids.bitmap, hex(m.peers[1].bitmapUuid));
          assert.equal(r1.flags.fullSync, true);
          assert.deepEqual(await h.md.changeSet(1), [[0, m.laSizeSect * 512]], 'peer full-sync flag: everything');
          const cs0: number[] = [];
          for (const [o, l] of await h.md.changeSet(0)) cs0.push(o, l);
          assert.deepEqual(cs0, wordsToExtents(m.words[1], m.laSizeSect, 4096).flat());
        }
      } finally {
        await h.close();
      }
    });
  }

  describe('a real DRBD 8.4 crashed primary (qemu lab)', function () {
    function rebuild(): string {
      const file = path.join(dir, 'crashed.img');
      fs.writeFileSync(file, '');
      fs.truncateSync(file, 67108864);
      const tail = zlib.gunzipSync(fs.readFileSync(path.join(FIXTURES, 'unclean', 'crashed-primary-64MiB.tail64k.bin.gz')));
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, tail, 0, tail.length, 67043328);
      fs.closeSync(fd);
      return file;
    }

    it('is unclean, with no bitmap bits and the AL extents at 0 and 12 MiB', async function () {
      const h = await readMetadataAt(rebuild());
      try {
        const r = await h.md.report({ extents: true });
        assert.equal(r.format, 'v08');
        assert.equal(r.clean, false);
        assert.equal(r.flags.raw, 0x13);
        assert.equal(r.laSizeSectors, 130992);
        assert.equal(r.uuids.current, '998FB830E755F513');
        assert.equal(r.bitsSet, 0);
        assert.deepEqual(r.alExtents, [[0, 4 << 20], [12 << 20, 4 << 20]]);
        assert.deepEqual(await h.md.changeSet(), r.alExtents);
      } finally {
        await h.close();
      }
    });

    it('update({clean}) leaves what drbdmeta apply-al leaves', async function () {
      if (!hasCommand('drbdmeta')) requires(this, 'drbdmeta');
      const ours = rebuild();
      const theirs = path.join(dir, 'theirs.img');
      fs.copyFileSync(ours, theirs);
      const h = await readMetadataAt(ours, {}, { write: true });
      try {
        await h.md.update({ clean: true });
      } finally {
        await h.close();
      }
      const t = (f: string): { fmt: 'v08'; mdDev: string; placement: 'internal' } => ({ fmt: 'v08', mdDev: f, placement: 'internal' });
      drbdmeta(t(theirs), ['apply-al']);
      const a = fs.readFileSync(ours).subarray(67043328);
      const b = fs.readFileSync(theirs).subarray(67043328);
      assert.ok(a.equals(b), 'meta-data area byte for byte equal');
      // A regular file needs --force; a clean dump has no "unclean" marker.
      const text = drbdmeta(t(ours), ['dump-md']);
      assert.doesNotMatch(text, /unclean/i);
      const dumped = parseDump(text);
      assert.equal(countBits(dumped.words[0], Math.ceil(130992 / 8)), 2048, 'two 4 MiB extents');
    });
  });
});

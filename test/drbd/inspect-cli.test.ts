// `drbd-bisync inspect` as an operator runs it.
import { strict as assert } from 'node:assert';
import type { MetadataReport } from '../../lib/drbd';
import { cli, cliJson } from '../helpers/cli';
import { requires } from '../helpers/env';
import { makeCase } from './cases';
import { prng, wordsToExtents } from './drbdmeta';

const SEED = Number(process.env.BISYNC_SEED ?? Date.now() % 100000);
const hex = (v: bigint): string => v.toString(16).toUpperCase().padStart(16, '0');

describe('drbd-bisync inspect', function () {
  this.timeout(120000);
  before(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
  });

  it('--json --extents on v08 internal meta-data: the documented keys, values as drbdmeta has them', function () {
    const c = makeCase('v08', 'internal', prng(SEED));
    try {
      const { status, doc } = cliJson<MetadataReport>(['inspect', c.backing, '--extents']);
      assert.equal(status, 0);
      for (const k of ['format', 'mdOffset', 'laSizeSectors', 'bytesPerBit', 'uuids', 'deviceUuid', 'flags', 'clean', 'bitsSet', 'changedBytes', 'alExtents', 'extents']) assert.ok(k in doc, k);
      assert.equal(doc.format, 'v08');
      assert.equal(doc.mdOffset, c.model.mdOffset);
      assert.equal(doc.uuids.current, hex(c.model.current));
      assert.deepEqual(doc.uuids.history, c.model.history.map(hex));
      assert.deepEqual(doc.extents, wordsToExtents(c.model.words[0], c.model.laSizeSect, 4096));
      assert.equal(typeof doc.flags.consistent, 'boolean');
      const plain = cliJson<MetadataReport>(['inspect', c.backing]).doc;
      assert.equal(plain.extents, undefined);
      assert.equal(plain.bitsSet, doc.bitsSet);
    } finally {
      c.cleanup();
    }
  });

  it('v09 flex-external: peers[] with slot, UUID, flags and per-peer extents; human summary', function () {
    const c = makeCase('v09', 'flex-external', prng(SEED + 1), { maxPeers: 2, peersWithSlot: 2 });
    try {
      const { status, doc } = cliJson<MetadataReport>(['inspect', c.backing, '--meta-device', c.metaDevice!, '--flex', '--extents']);
      assert.equal(status, 0);
      assert.equal(doc.format, 'v09');
      assert.deepEqual(doc.placement, { kind: 'flex-external', metaDevice: c.metaDevice });
      assert.equal(doc.peers!.length, 2);
      for (const p of doc.peers!) {
        assert.equal(p.bitmapUuid, hex(c.model.peers[p.nodeId].bitmapUuid));
        assert.deepEqual(p.extents, wordsToExtents(c.model.words[p.bitmapIndex], c.model.laSizeSect, 4096));
      }
      const one = doc.peers![1];
      const forPeer = cliJson<MetadataReport>(['inspect', c.backing, '--meta-device', c.metaDevice!, '--node-id', String(one.nodeId), '--extents']).doc;
      assert.equal(forPeer.uuids.bitmap, one.bitmapUuid);
      assert.deepEqual(forPeer.extents, one.extents);
      const human = cli(['inspect', c.backing, '--meta-device', c.metaDevice!]);
      assert.equal(human.status, 0);
      assert.match(human.stdout, /DRBD meta-data v09, flex-external on \/dev\/loop\d+/);
      assert.match(human.stdout, new RegExp(`current UUID ${hex(c.model.current)}`));
      assert.match(human.stdout, new RegExp(`peer ${one.nodeId}: slot ${one.bitmapIndex}, bitmap UUID ${one.bitmapUuid}`));
      assert.equal(human.stderr, '');
    } finally {
      c.cleanup();
    }
  });

  it('exits 2 with a clear message on bad meta-data and bad options', function () {
    const c = makeCase('v08', 'internal', prng(SEED + 2));
    try {
      const r = cliJson(['inspect', c.backing, '--meta-device', c.backing, '--meta-index', '3']);
      assert.equal(r.status, 2);
      assert.match(JSON.stringify(r.doc), /ERR_BAD_METADATA|past the end/);
      const bad = cli(['inspect', c.backing, '--flex']);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /--flex needs --meta-device/);
      const idx = cli(['inspect', c.backing, '--meta-device', c.backing, '--meta-index', 'x']);
      assert.equal(idx.status, 2);
      assert.match(idx.stderr, /--meta-index must be an integer 0 to 255, got 'x'/);
    } finally {
      c.cleanup();
    }
  });
});

// DrbdMetadata against the real drbdmeta: what drbdmeta writes we read
// identically, and what we write drbdmeta reads back identically.
import { strict as assert } from 'node:assert';
import { readMetadataAt } from '../../lib/drbd';
import { Extent, normalize } from '../../lib/device/extent';
import { requires } from '../helpers/env';
import { Case, makeCase } from './cases';
import { DumpModel, Fmt, Placement, countBits, drbdmeta, dump, prng, randomUuid, readAt, wordsToExtents } from './drbdmeta';

const hex = (v: bigint): string => v.toString(16).toUpperCase().padStart(16, '0');
const SEED = Number(process.env.BISYNC_SEED ?? Date.now() % 100000);

/** What our report must say for a peer slot or v08 bitmap, from drbdmeta's dump. */
function expectedSlot(m: DumpModel, slot: number): { bitsSet: number; extents: Extent[] } {
  const nBits = Math.ceil(m.laSizeSect / (m.bytesPerBit / 512));
  return { bitsSet: countBits(m.words[slot], nBits), extents: wordsToExtents(m.words[slot], m.laSizeSect, m.bytesPerBit) };
}

async function checkReport(c: Case): Promise<void> {
  const m = c.model;
  const h = await readMetadataAt(c.backing, { metaDevice: c.metaDevice, index: c.index });
  try {
    const r = await h.md.report({ extents: true });
    assert.equal(r.format, m.fmt);
    assert.equal(r.mdOffset, m.mdOffset);
    assert.equal(r.alOffset, m.alOffset);
    assert.equal(r.bmOffset, m.bmOffset);
    assert.equal(r.mdSizeSectors, m.mdSizeSect);
    assert.equal(r.laSizeSectors, m.laSizeSect);
    assert.equal(h.md.dataSize, m.laSizeSect * 512);
    assert.equal(r.bytesPerBit, m.bytesPerBit);
    assert.equal(r.uuids.current, hex(m.current));
    assert.deepEqual(r.uuids.history, m.history.map(hex));
    assert.equal(r.deviceUuid, hex(m.deviceUuid));
    assert.equal(r.flags.raw, m.flags);
    assert.equal(r.flags.consistent, (m.flags & 1) !== 0);
    assert.equal(r.flags.wasUpToDate, (m.flags & 0x10) !== 0);
    assert.equal(r.flags.crashedPrimary, (m.flags & 0x40) !== 0);
    assert.equal(r.clean, (m.flags & 0x80) !== 0);
    assert.deepEqual(r.alExtents, []);
    if (m.fmt === 'v08') {
      assert.equal(r.uuids.bitmap, hex(m.bitmap));
      assert.equal(r.flags.fullSync, (m.flags & 8) !== 0);
      const e = expectedSlot(m, 0);
      assert.equal(r.bitsSet, e.bitsSet);
      assert.deepEqual(r.extents, e.extents);
      assert.equal(r.changedBytes, e.extents.reduce((n, x) => n + x[1], 0));
      const gi = drbdmeta(c.target, ['get-gi']).trim().split(':');
      assert.deepEqual(gi.slice(0, 4), [r.uuids.current, r.uuids.bitmap, ...r.uuids.history]);
      assert.deepEqual(gi.slice(4).map(Number), [r.flags.consistent, r.flags.wasUpToDate, r.flags.primary, r.flags.connected, r.flags.fullSync, r.flags.peerOutdated, r.flags.crashedPrimary].map(Number));
    } else {
      assert.equal(r.nodeId, m.nodeId);
      assert.equal(r.maxPeers, m.maxPeers);
      const withSlot = m.peers.map((p, n) => ({ ...p, n })).filter((p) => p.bitmapIndex >= 0);
      assert.deepEqual(r.peers!.map((p) => p.nodeId), withSlot.map((p) => p.n));
      for (const p of r.peers!) {
        const mp = m.peers[p.nodeId];
        const e = expectedSlot(m, mp.bitmapIndex);
        assert.equal(p.bitmapIndex, mp.bitmapIndex);
        assert.equal(p.bitmapUuid, hex(mp.bitmapUuid));
        assert.equal(p.flags.raw, mp.flags);
        assert.equal(p.bitsSet, e.bitsSet, `peer ${p.nodeId} bits`);
        assert.deepEqual(p.extents, e.extents, `peer ${p.nodeId} extents`);
        const peerBm: Extent[] = [];
        for await (const x of h.md.bitmapExtents(p.nodeId)) peerBm.push(x);
        assert.deepEqual(peerBm, e.extents);
      }
      if (withSlot.length === 1) {
        const p = withSlot[0];
        assert.equal(h.md.defaultPeer, p.n);
        assert.equal(r.uuids.bitmap, hex(p.bitmapUuid));
        assert.equal(r.flags.connected, (p.flags & 1) !== 0);
        assert.equal(r.flags.peerOutdated, (p.flags & 2) !== 0);
        assert.equal(r.flags.fullSync, (p.flags & 8) !== 0);
        assert.deepEqual(r.extents, expectedSlot(m, p.bitmapIndex).extents);
        const gi = drbdmeta(c.target, ['get-gi', `--node-id=${p.n}`]).trim().split(':');
        assert.deepEqual(gi.slice(0, 2), [r.uuids.current, r.uuids.bitmap]);
      } else {
        assert.equal(h.md.defaultPeer, undefined);
        await assert.rejects(h.md.changeSet(), { code: 'ERR_BAD_METADATA', message: /no default peer/ });
      }
    }
  } finally {
    await h.close();
  }
}

const placements: Placement[] = ['internal', 'flex-external', 1];

function slotBitList(words: bigint[], nBits: number): number[] {
  const out: number[] = [];
  words.forEach((w, i) => {
    if (w !== 0n) for (let b = 0; b < 64; b++) if (i * 64 + b < nBits && ((w >> BigInt(b)) & 1n) === 1n) out.push(i * 64 + b);
  });
  return out;
}

describe('drbd meta-data vs drbdmeta', function () {
  this.timeout(300000);
  before(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
  });

  for (const fmt of ['v08', 'v09'] as Fmt[]) {
    for (const placement of placements) {
      it(`reads ${fmt} ${placement} meta-data exactly as drbdmeta dumps it (seed ${SEED})`, async function () {
        const rnd = prng(SEED + placements.indexOf(placement) * 7 + (fmt === 'v09' ? 100 : 0));
        for (let i = 0; i < 2; i++) {
          const c = makeCase(fmt, placement, rnd, fmt === 'v09' && i === 1 ? { maxPeers: 4, peersWithSlot: 3 } : {});
          try {
            await checkReport(c);
          } finally {
            c.cleanup();
          }
        }
      });
    }
  }

  it('reads meta-data on a 4096-byte-sector loop device', async function () {
    const c = makeCase('v09', 'internal', prng(SEED + 1), { sectorSize: 4096, maxPeers: 2, peersWithSlot: 1 });
    try {
      await checkReport(c);
    } finally {
      c.cleanup();
    }
  });

  for (const fmt of ['v08', 'v09'] as Fmt[]) {
    it(`${fmt}: clearBits clears only the blocks wholly inside the extents, in the peer's slot only (seed ${SEED})`, async function () {
      const rnd = prng(SEED + 2000 + (fmt === 'v09' ? 1 : 0));
      const c = makeCase(fmt, 'internal', rnd, fmt === 'v09' ? { maxPeers: 2, peersWithSlot: 2 } : {});
      try {
        const m = c.model;
        const peer = fmt === 'v09' ? m.peers.findIndex((p) => p && p.bitmapIndex === 1) : undefined;
        const slot = fmt === 'v09' ? 1 : 0;
        const dataSize = m.laSizeSect * 512;
        const nBits = Math.ceil(m.laSizeSect / 8);
        const clear: Extent[] = [[dataSize - 700, 700]];
        for (let k = 0; k < 15; k++) {
          const off = Math.floor(rnd() * (dataSize - 1));
          clear.push([off, Math.min(1 + Math.floor(rnd() * 2000000), dataSize - off)]);
        }
        // Some extents around bits that are set, starting mid-block.
        const setNow = slotBitList(m.words[slot], nBits);
        for (let k = 0; k < 5 && setNow.length; k++) {
          const b = setNow[Math.floor(rnd() * setNow.length)];
          const off = Math.max(0, b * 4096 - 100);
          clear.push([off, Math.min(3 * 4096, dataSize - off)]);
        }
        const inner = new Set<number>();
        // Blocks wholly inside the union: two extents that meet inside a block cover it together.
        for (const [o, l] of normalize(clear)) for (let b = Math.ceil(o / 4096); b < (o + l >= dataSize ? nBits : Math.floor((o + l) / 4096)); b++) inner.add(b);
        const h = await readMetadataAt(c.backing, {}, { write: true });
        try {
          await h.md.update({ peerNodeId: peer, clearBits: clear });
        } finally {
          await h.close();
        }
        const after = dump(c.target, false);
        const expected = slotBitList(m.words[slot], nBits).filter((b) => !inner.has(b));
        assert.ok(expected.length < setNow.length, 'some set bits were in range');
        assert.deepEqual(slotBitList(after.words[slot], nBits), expected);
        if (fmt === 'v09') assert.deepEqual(after.words[0], m.words[0]);
        assert.equal(after.current, m.current);
      } finally {
        c.cleanup();
      }
    });

    for (const placement of placements) {
      it(`writes ${fmt} ${placement} UUIDs, flags and bits that drbdmeta reads back (seed ${SEED})`, async function () {
        const rnd = prng(SEED + 1000 + placements.indexOf(placement) + (fmt === 'v09' ? 10 : 0));
        const c = makeCase(fmt, placement, rnd, fmt === 'v09' ? { maxPeers: 2, peersWithSlot: 2 } : {});
        try {
          const m = c.model;
          const peer = fmt === 'v09' ? m.peers.findIndex((p) => p && p.bitmapIndex === 1) : undefined;
          const other = fmt === 'v09' ? m.peers.findIndex((p) => p && p.bitmapIndex === 0) : undefined;
          const dataSize = m.laSizeSect * 512;
          const set: Extent[] = [];
          for (let k = 0; k < 20; k++) {
            const off = Math.floor(rnd() * dataSize);
            set.push([off, Math.min(1 + Math.floor(rnd() * 300000), dataSize - off)]);
          }
          set.push([dataSize - 1, 1]); // the last, partial bit
          const uuids = { current: hex(randomUuid(rnd)), bitmap: hex(randomUuid(rnd)), history: (fmt === 'v08' ? [0, 1] : [0, 1, 2]).map(() => hex(randomUuid(rnd))) };
          const flags = { consistent: rnd() < 0.5, wasUpToDate: rnd() < 0.5, primary: false, crashedPrimary: rnd() < 0.5, connected: rnd() < 0.5, peerOutdated: rnd() < 0.5, fullSync: rnd() < 0.5 };
          const h = await readMetadataAt(c.backing, { metaDevice: c.metaDevice, index: c.index }, { write: true });
          try {
            await h.md.update({ uuids, flags, peerNodeId: peer, clearBitmap: true, setBits: set });
          } finally {
            await h.close();
          }
          const after = dump(c.target, false); // clean: dumps without --force
          assert.equal(hex(after.current), uuids.current);
          const nBits = Math.ceil(m.laSizeSect / 8);
          const expectBits = new Set<number>();
          for (const [o, l] of set) for (let b = Math.floor(o / 4096); b < Math.ceil((o + l) / 4096); b++) expectBits.add(b);
          const expected = [...expectBits].sort((a, b) => a - b);
          const slot = fmt === 'v08' ? 0 : 1;
          const gotBits: number[] = [];
          after.words[slot].forEach((w, i) => {
            for (let b = 0; b < 64; b++) if (((w >> BigInt(b)) & 1n) === 1n) gotBits.push(i * 64 + b);
          });
          assert.deepEqual(gotBits.filter((b) => b < nBits), expected);
          assert.deepEqual(gotBits.filter((b) => b >= nBits), [], 'no bits past la_size');
          const rawFlags = readAt(c.target.mdDev, m.mdOffset + 0x38, 4).readUInt32BE(0);
          if (fmt === 'v08') {
            assert.deepEqual([after.bitmap, ...after.history].map(hex), [uuids.bitmap, ...uuids.history]);
            const gi = drbdmeta(c.target, ['get-gi']).trim().split(':').slice(4).map(Number);
            assert.deepEqual(gi, [flags.consistent, flags.wasUpToDate, flags.primary, flags.connected, flags.fullSync, flags.peerOutdated, flags.crashedPrimary].map(Number));
            assert.equal(rawFlags & 0x80, 0x80, 'AL clean kept');
          } else {
            assert.equal(hex(after.peers[peer!].bitmapUuid), uuids.bitmap);
            assert.deepEqual(after.history.map(hex), [...uuids.history, ...Array(29).fill('0000000000000000')]);
            // The other peer's slot, UUID and flags are untouched.
            assert.deepEqual(after.words[0], m.words[0]);
            assert.equal(after.peers[other!].bitmapUuid, m.peers[other!].bitmapUuid);
            assert.equal(after.peers[other!].flags, m.peers[other!].flags);
            const gi = drbdmeta(c.target, ['get-gi', `--node-id=${peer}`]).trim().split(':');
            assert.equal(gi[1], uuids.bitmap);
            assert.deepEqual(gi.slice(4).map(Number), [flags.consistent, flags.wasUpToDate, flags.primary, flags.crashedPrimary, 1, (m.flags >> 8) & 1, 0, flags.connected, flags.peerOutdated, (m.peers[peer!].flags >> 2) & 1, flags.fullSync, (m.peers[peer!].flags >> 4) & 1].map(Number));
          }
          // Everything else in the superblock is as drbdmeta left it.
          assert.equal(after.laSizeSect, m.laSizeSect);
          assert.equal(after.deviceUuid, m.deviceUuid);
          assert.equal(after.nodeId, m.nodeId);
        } finally {
          c.cleanup();
        }
      });
    }
  }
});

// The LVM layer of the plan over hand-built LVM views and in-memory disks: which
// LV each changed block belongs to, verdicts per LV, resolutions, and the oVirt
// special LVs. The real-lvm2 cases live in test/resync/lvm-merge.test.ts.
import { strict as assert } from 'node:assert';
import type { Extent } from '../../lib/device/extent';
import { intersect, subtract } from '../../lib/device/extent';
import type { LogicalVolume, LvmView, MetadataComparison, OvirtRole } from '../../lib/lvm/types';
import { attribute, joinVerdicts, lvVerdict, planLvm, regionsOf, LvmResolutions, LeaseParser, type LvVerdict } from '../../lib/plan/lvm';
import { MemoryEndpoint } from '../transport/fixtures/memory-endpoint';

const MiB = 1 << 20;
const SIZE = 16 * MiB;
const BS = 4096;

function lv(name: string, uuid: string, extents: Extent[], ovirt?: { role: OvirtRole; image?: string }): LogicalVolume {
  return {
    name, uuid, tags: ovirt?.image ? [`IU_${ovirt.image}`] : [], status: ['READ', 'WRITE', 'VISIBLE'], segmentTypes: ['linear'], extents,
    ovirt: ovirt ? { role: ovirt.role, image: ovirt.image ?? null, parent: null, mdSlot: null, alias: null } : null,
  };
}

function view(lvs: LogicalVolume[], seqno = 5, history: number[] = [4, 3]): LvmView {
  const copy = (s: number) => ({ seqno: s, checksum: 1000 + s, mda: 0, offset: 512 * s, size: 400, description: null, creationHost: null, creationTime: null });
  return {
    pv: { uuid: 'PVPVPV-aaaa-bbbb-cccc-dddd-eeee-ffffff', labelSector: 1, deviceSize: SIZE, peStart: MiB, mdas: [{ start: 4096, size: MiB - 4096, ignored: false }] },
    metadataRegion: [[0, MiB]],
    committed: copy(seqno),
    history: history.map(copy),
    vg: { name: 'vg0', uuid: 'VGVGVG', seqno, extentSize: MiB, tags: [], pvName: 'pv0', peCount: 15, lvs, ovirt: lvs.some((l) => l.ovirt) },
    unallocated: [],
  };
}

const same = (seqno = 5): MetadataComparison => ({ local: { seqno, checksum: 1000 + seqno }, peer: { seqno, checksum: 1000 + seqno }, common: { seqno, checksum: 1000 + seqno }, changedOn: 'none', changes: { local: [], peer: [] }, extentConflicts: [] });

/** Two disks with common random content; each side's writes get fresh bytes (or `sameAs` copies the other's). */
function disks(localWrites: Extent[], peerWrites: Extent[], identical: Extent[] = []): { local: MemoryEndpoint; peer: MemoryEndpoint } {
  const base = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i += 4) base.writeUInt32LE((i * 2654435761) >>> 0, i);
  const local = new MemoryEndpoint(SIZE, (d) => base.copy(d));
  const peer = new MemoryEndpoint(SIZE, (d) => base.copy(d));
  for (const [o, l] of localWrites) local.disk.fill(0x11 + (o % 200), o, o + l);
  for (const [o, l] of peerWrites) peer.disk.fill(0x22 + (o % 200), o, o + l);
  for (const [o, l] of identical) {
    local.disk.fill(0x77, o, o + l);
    peer.disk.fill(0x77, o, o + l);
  }
  return { local, peer };
}

/** plan()'s hashing of the overlap, done here the simple way. */
function overlap(ep: { local: MemoryEndpoint; peer: MemoryEndpoint }, lc: Extent[], pc: Extent[]) {
  const identical: Extent[] = [];
  const conflicts: Extent[] = [];
  for (const [o, l] of intersect(lc, pc)) {
    for (let b = o; b < o + l; b += BS) (ep.local.disk.subarray(b, b + BS).equals(ep.peer.disk.subarray(b, b + BS)) ? identical : conflicts).push([b, BS]);
  }
  return { identical, conflicts };
}

const noLease: LeaseParser = () => null;

async function run(lvs: { local: LogicalVolume[]; peer: LogicalVolume[] }, lc: Extent[], pc: Extent[], opts: { cmp?: MetadataComparison; res?: LvmResolutions; identicalWrites?: Extent[]; lease?: LeaseParser; seq?: [number, number] } = {}) {
  const ep = disks(lc.filter(([o]) => !(opts.identicalWrites ?? []).some(([x]) => x === o)), pc.filter(([o]) => !(opts.identicalWrites ?? []).some(([x]) => x === o)), opts.identicalWrites);
  const ov = overlap(ep, lc, pc);
  const [ls, ps] = opts.seq ?? [5, 5];
  const r = await planLvm(
    { local: view(lvs.local, ls), peer: view(lvs.peer, ps), comparison: opts.cmp ?? same(), localChanges: lc, peerChanges: pc, ...ov, blockSize: BS, dataSize: SIZE },
    { local: ep.local, peer: ep.peer, parseLease: opts.lease ?? noLease },
    opts.res,
  );
  return { r, ep };
}

const A = lv('vmA', 'uuid-A', [[1 * MiB, 4 * MiB]]);
const B = lv('vmB', 'uuid-B', [[5 * MiB, 2 * MiB], [12 * MiB, 1 * MiB]], { role: 'volume', image: 'img-B' });
const C = lv('vmC', 'uuid-C', [[7 * MiB, 2 * MiB]]);
const both = { local: [A, B, C], peer: [A, B, C] };

describe('LVM plan: attribution', () => {
  it('cuts the data area into metadata, LV extents and free space', () => {
    const r = regionsOf(view([A, B]), SIZE).map((x) => [x.off / MiB, x.end / MiB, x.owner.replace('\0', '')]);
    assert.deepEqual(r, [[0, 1, 'meta'], [1, 5, 'uuid-A'], [5, 7, 'uuid-B'], [7, 12, 'free'], [12, 13, 'uuid-B'], [13, 16, 'free']]);
  });

  it('splits changed extents at region borders, in order', () => {
    const regions = regionsOf(view([A, B]), SIZE);
    const pieces = [...attribute([[MiB - BS, 2 * BS], [5 * MiB - BS, 2 * MiB + 2 * BS]], regions)].map(([o, l, w]) => [o, l, w.replace('\0', '')]);
    assert.deepEqual(pieces, [[MiB - BS, BS, 'meta'], [MiB, BS, 'uuid-A'], [5 * MiB - BS, BS, 'uuid-A'], [5 * MiB, 2 * MiB, 'uuid-B'], [7 * MiB, BS, 'free']]);
  });
});

describe('LVM plan: verdicts per LV', () => {
  it('joins verdicts as "which nodes changed any part": every list of up to three verdicts', () => {
    const all: LvVerdict[] = ['unchanged', 'local-only', 'peer-only', 'both'];
    assert.deepEqual([[false, false], [true, false], [false, true], [true, true]].map(([l, p]) => lvVerdict(l, p)), all);
    const lists: LvVerdict[][] = [[]];
    for (let n = 0; n < 3; n++) for (const l of [...lists]) if (l.length === n) for (const v of all) lists.push([...l, v]);
    for (const l of lists) {
      const changed = new Set(l.filter((v) => v !== 'unchanged'));
      const want = changed.has('both') || (changed.has('local-only') && changed.has('peer-only')) ? 'both' : changed.has('local-only') ? 'local-only' : changed.has('peer-only') ? 'peer-only' : 'unchanged';
      assert.equal(joinVerdicts(l), want, JSON.stringify(l));
    }
  });

  it('each node wrote only its own LVs: local-only and peer-only, nothing refused, all moves plain', async () => {
    const lc: Extent[] = [[1 * MiB, 8 * BS], [2 * MiB, BS]];
    const pc: Extent[] = [[7 * MiB, 16 * BS], [12 * MiB, BS]];
    const { r } = await run(both, lc, pc);
    const by = Object.fromEntries(r.doc.lvs.map((d) => [d.name, d]));
    assert.equal(by.vmA.verdict, 'local-only');
    assert.deepEqual(by.vmA.changedBytes, { local: 9 * BS, peer: 0 });
    assert.equal(by.vmB.verdict, 'peer-only');
    assert.equal(by.vmC.verdict, 'peer-only');
    assert.deepEqual(r.blockers, []);
    assert.deepEqual(r.doc.lvConflicts, []);
    assert.deepEqual(r.toPeer, lc);
    assert.deepEqual(r.toLocal, pc);
    assert.deepEqual([r.forcedToPeer, r.forcedToLocal], [[], []]);
  });

  it('an LV both nodes wrote in different blocks is a conflict although no block overlaps', async () => {
    const { r } = await run(both, [[1 * MiB, BS]], [[3 * MiB, BS]]);
    assert.equal(r.doc.lvs[0].verdict, 'both');
    assert.deepEqual(r.doc.lvConflicts, ['vmA']);
    assert.match(r.blockers.join('\n'), /vmA.*--lv NAME=local\|peer/);
    assert.deepEqual(r.conflicts, [], 'no per-block conflict: it is the LV that conflicts');
  });

  it('a harmless rewrite of identical bytes by one node does not make a conflict', async () => {
    const { r } = await run(both, [[1 * MiB, BS]], [[3 * MiB, BS]], { identicalWrites: [[3 * MiB, BS]] });
    assert.equal(r.doc.lvs[0].verdict, 'local-only');
    assert.deepEqual(r.blockers, []);
  });

  it('a block both wrote differently counts for both nodes', async () => {
    const { r } = await run(both, [[2 * MiB, BS]], [[2 * MiB, BS]]);
    assert.equal(r.doc.lvs[0].verdict, 'both');
    assert.deepEqual(r.conflicts, [[2 * MiB, BS]]);
  });

  it('blocks outside any LV keep the per-block rules', async () => {
    const { r } = await run(both, [[10 * MiB, 2 * BS]], [[10 * MiB + BS, 2 * BS]]);
    assert.deepEqual(r.conflicts, [[10 * MiB + BS, BS]]);
    assert.deepEqual(r.toPeer, [[10 * MiB, BS]]);
    assert.deepEqual(r.toLocal, [[10 * MiB + 2 * BS, BS]]);
    assert.deepEqual(r.doc.unallocatedBytes, { local: 2 * BS, peer: 2 * BS });
    assert.deepEqual(r.blockers, []);
  });
});

describe('LVM plan: resolutions', () => {
  const lc: Extent[] = [[1 * MiB, BS], [2 * MiB, BS]];
  const pc: Extent[] = [[2 * MiB, BS], [3 * MiB, BS]];

  it('--lv NAME=peer: the peer\'s blocks go plain, every block this node wrote is overwritten (archived)', async () => {
    const { r } = await run(both, lc, pc, { res: { lvWinners: { vmA: 'peer' } } });
    assert.equal(r.doc.lvs[0].resolution, 'peer');
    assert.deepEqual(r.doc.lvConflicts, []);
    assert.deepEqual(r.blockers, []);
    assert.deepEqual(r.toLocal, [[3 * MiB, BS]]);
    assert.deepEqual(r.forcedToLocal, [[1 * MiB, BS], [2 * MiB, BS]]);
    assert.deepEqual([r.toPeer, r.forcedToPeer, r.conflicts], [[], [], []]);
  });

  it('selects every volume of an oVirt disk by its image id; an unknown selector is refused by name', async () => {
    const { r } = await run(both, [[5 * MiB, BS]], [[6 * MiB, BS]], { res: { lvWinners: { 'img-B': 'local' } } });
    assert.equal(r.doc.lvs[1].resolution, 'local');
    assert.deepEqual(r.forcedToPeer, [[6 * MiB, BS]]);
    await assert.rejects(run(both, lc, pc, { res: { lvWinners: { nosuch: 'local' } } }), /--lv nosuch: no LV/);
  });

  it('--on-conflict style per-block conflicts inside a resolved LV are gone', async () => {
    const { r } = await run(both, [[2 * MiB, BS]], [[2 * MiB, BS]], { res: { lvWinners: { 'uuid-A': 'local' } } });
    assert.deepEqual(r.conflicts, []);
    assert.deepEqual(r.forcedToPeer, [[2 * MiB, BS]]);
  });

  it('ids is merged per sector, the newer record winning; an unparseable sector is an ordinary conflict', async () => {
    const ids = lv('ids', 'uuid-ids', [[9 * MiB, MiB]], { role: 'ids' });
    // Records: first byte 0xAA = valid, timestamp in bytes 8..15.
    const lease: LeaseParser = (s) => (s[0] === 0xaa ? { timestamp: Number(s.readBigUInt64LE(8)) } : null);
    const write = (ep: MemoryEndpoint, sector: number, ts: number): void => {
      const b = ep.disk.subarray(9 * MiB + sector * 512, 9 * MiB + sector * 512 + 512);
      b.fill(0);
      b[0] = 0xaa;
      b.writeBigUInt64LE(BigInt(ts), 8);
    };
    const setup = async (valid: boolean) => {
      const ep = disks([], []);
      for (const d of [ep.local.disk, ep.peer.disk]) d.fill(0, 9 * MiB, 10 * MiB);
      write(ep.local, 0, 100); write(ep.peer, 0, 50); // host 1: this node newer
      write(ep.local, 1, 10); write(ep.peer, 1, 70); // host 2: peer newer
      if (!valid) ep.peer.disk[9 * MiB + 2 * 512] = 0x01; // garbage in host 3's sector
      const ch: Extent[] = [[9 * MiB, BS]];
      return planLvm({ local: view([ids]), peer: view([ids]), comparison: same(), localChanges: ch, peerChanges: ch, ...overlap(ep, ch, ch), blockSize: BS, dataSize: SIZE }, { local: ep.local, peer: ep.peer, parseLease: lease });
    };
    const ok = await setup(true);
    assert.equal(ok.doc.lvs[0].resolution, 'sector-merge');
    assert.deepEqual(ok.forcedToPeer, [[9 * MiB, 512]]);
    assert.deepEqual(ok.forcedToLocal, [[9 * MiB + 512, 512]]);
    assert.deepEqual(ok.conflicts, []);
    assert.deepEqual(ok.blockers, []);
    const bad = await setup(false);
    assert.equal(bad.doc.lvs[0].resolution, null);
    assert.deepEqual(bad.doc.lvConflicts, ['ids']);
  });

  it('inbox/outbox written on both: this node\'s copy, said in the notes', async () => {
    const inbox = lv('inbox', 'uuid-in', [[9 * MiB, MiB]], { role: 'inbox' });
    const { r } = await run({ local: [inbox], peer: [inbox] }, [[9 * MiB, BS]], [[9 * MiB + BS, BS]]);
    assert.equal(r.doc.lvs[0].resolution, 'local');
    assert.deepEqual(r.forcedToPeer, [[9 * MiB + BS, BS]]);
    assert.match(r.notes.join('\n'), /inbox.*this node's copy/);
  });
});

describe('LVM plan: metadata', () => {
  const changed = (on: MetadataComparison['changedOn']): MetadataComparison => ({
    local: { seqno: 6, checksum: 1006 }, peer: { seqno: on === 'both' ? 6 : 5, checksum: on === 'both' ? 2006 : 1005 }, common: { seqno: 5, checksum: 1005 }, changedOn: on,
    changes: { local: [{ kind: 'created', lv: 'vmD', uuid: 'uuid-D' }], peer: on === 'both' ? [{ kind: 'created', lv: 'vmE', uuid: 'uuid-E' }] : [] },
    extentConflicts: on === 'both' ? [[9, 2, 'vmD', 'vmE']] : [],
  });
  const D = lv('vmD', 'uuid-D', [[10 * MiB, 2 * MiB]]);
  const E = lv('vmE', 'uuid-E', [[10 * MiB, 2 * MiB]]);

  it('changed on one node only: its metadata blocks and its new LV move, nothing refused', async () => {
    const { r } = await run({ local: [A, D], peer: [A] }, [[4096, 8 * BS], [10 * MiB, BS]], [], { cmp: changed('local') });
    assert.deepEqual(r.blockers, []);
    assert.deepEqual(r.toPeer, [[4096, 8 * BS], [10 * MiB, BS]]);
    assert.deepEqual(r.doc.metadataRegionBytes, { local: 8 * BS, peer: 0 });
    assert.equal(r.doc.lvs.find((d) => d.name === 'vmD')?.verdict, 'local-only');
  });

  it('changed on both: refused with both nodes\' changes; --vg-metadata needs --drop-lv for the loser\'s written LV', async () => {
    const lc: Extent[] = [[4096, 8 * BS], [10 * MiB, BS]];
    const pc: Extent[] = [[4096, 8 * BS], [11 * MiB, BS]];
    const lvs = { local: [A, D], peer: [A, E] };
    const refused = await run(lvs, lc, pc, { cmp: changed('both') });
    assert.match(refused.r.blockers.join('\n'), /metadata changed on both nodes since seqno 5: local created vmD; peer created vmE; 1 extent range/);
    const needDrop = await run(lvs, lc, pc, { cmp: changed('both'), res: { vgMetadataWinner: 'local' } });
    assert.match(needDrop.r.blockers.join('\n'), /LV vmE .*--drop-lv vmE/);
    const { r } = await run(lvs, lc, pc, { cmp: changed('both'), res: { vgMetadataWinner: 'local', dropLvs: ['vmE'] } });
    assert.deepEqual(r.blockers, []);
    assert.equal(r.doc.metadata.resolution, 'local');
    assert.equal(r.doc.lvs.find((d) => d.name === 'vmE')?.resolution, 'dropped');
    assert.deepEqual(r.forcedToPeer, [[4096, 8 * BS], [11 * MiB, BS]], 'the peer\'s metadata and vmE blocks are overwritten (archived)');
    assert.deepEqual(r.toPeer, [[10 * MiB, BS]]);
    assert.deepEqual([...subtract(r.toLocal, [])], []);
  });

  it('a block both wrote in the loser\'s dropped LV is only an archived overwrite, never a plain move first (either winner)', async () => {
    // Both nodes created an LV in the same free extents and wrote the same block there: the
    // plain lane runs before the archived one, so a block in both would reach the archive
    // already overwritten and the loser's bytes would be lost.
    const lc: Extent[] = [[4096, 8 * BS], [10 * MiB, 2 * BS]];
    const pc: Extent[] = [[4096, 8 * BS], [10 * MiB + BS, 2 * BS]];
    const lvs = { local: [A, D], peer: [A, E] };
    for (const [winner, loser] of [['local', 'vmE'], ['peer', 'vmD']] as const) {
      const { r } = await run(lvs, lc, pc, { cmp: changed('both'), res: { vgMetadataWinner: winner, dropLvs: [loser] } });
      assert.deepEqual(r.blockers, [], winner);
      const plain = [...r.toPeer, ...r.toLocal].sort((x, y) => x[0] - y[0]);
      const forced = [...r.forcedToPeer, ...r.forcedToLocal].sort((x, y) => x[0] - y[0]);
      assert.deepEqual([...intersect(plain, forced)], [], `${winner}: plain ${JSON.stringify(plain)} forced ${JSON.stringify(forced)}`);
      const into = winner === 'local' ? r.forcedToPeer : r.forcedToLocal;
      assert.deepEqual([...intersect(into, [[10 * MiB + BS, BS]])], [[10 * MiB + BS, BS]], `${winner}: the block both wrote is archived on the loser`);
    }
  });
});

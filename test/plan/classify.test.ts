import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { GenerationUuids, classify, uuidsOf } from '../../lib/plan/classify';

const u = (current: bigint, bitmap = 0n, history: bigint[] = [0n, 0n]): GenerationUuids => ({ current, bitmap, history });
// Distinct, non-reserved, even UUIDs.
const uuid = fc.bigInt({ min: 0x100n, max: (1n << 64n) - 1n }).map((v) => v & ~1n);

describe('classify: DRBD generation-UUID rules', () => {
  it('just-created on both sides is in sync (rule 10)', () => {
    assert.equal(classify(u(4n), u(4n)).verdict, 'in-sync');
  });

  it('a just-created side needs a full sync from the other (rules 20, 30)', () => {
    const r = classify(u(4n), u(0xABCDn));
    assert.deepEqual([r.verdict, r.rule, r.fullSync], ['peer-ahead', 20, true]);
    assert.deepEqual([classify(u(0xABCDn), u(0n)).verdict, classify(u(0xABCDn), u(0n)).rule], ['local-ahead', 30]);
  });

  it('equal current UUIDs are in sync, whatever bit 0 (the role) says (rule 40)', () => {
    fc.assert(fc.property(uuid, (c) => classify(u(c | 1n), u(c)).verdict === 'in-sync'));
  });

  it('only the peer wrote: its bitmap UUID is our current (rule 50)', () => {
    fc.assert(fc.property(uuid, uuid, (c, n) => {
      fc.pre(c !== n);
      const r = classify(u(c), u(n | 1n, c));
      return r.verdict === 'peer-ahead' && r.rule === 50 && !r.fullSync;
    }));
  });

  it('only this node wrote: our bitmap UUID is the peer current (rule 70)', () => {
    fc.assert(fc.property(uuid, uuid, (c, n) => {
      fc.pre(c !== n);
      const r = classify(u(n, c | 1n), u(c));
      return r.verdict === 'local-ahead' && r.rule === 70;
    }));
  });

  it('a current UUID deep in the other side\'s history means a full sync (rules 60, 80)', () => {
    const r = classify(u(0x10n), u(0x20n, 0x30n, [0x40n, 0x10n]));
    assert.deepEqual([r.verdict, r.rule, r.fullSync], ['peer-ahead', 60, true]);
    const s = classify(u(0x20n, 0x30n, [0x40n, 0x10n]), u(0x10n));
    assert.deepEqual([s.verdict, s.rule, s.fullSync], ['local-ahead', 80, true]);
  });

  it('equal non-zero bitmap UUIDs and different currents are the split brain we merge (rule 90)', () => {
    fc.assert(fc.property(uuid, uuid, uuid, (a, b, c) => {
      fc.pre(new Set([a, b, c]).size === 3);
      const r = classify(u(a | 1n, c, [0x500n, 0n]), u(b, c | 1n, [0x500n, 0n]));
      return r.verdict === 'split-brain' && r.rule === 90;
    }));
  });

  it('a shared history UUID alone is a split brain no bitmap covers (rule 100)', () => {
    const r = classify(u(0x10n, 0x20n, [0x99n, 0n]), u(0x30n, 0x40n, [0x77n, 0x99n]));
    assert.deepEqual([r.verdict, r.rule], ['history-split-brain', 100]);
    assert.match(r.reason, /full resync/);
  });

  it('nothing shared is unrelated data', () => {
    assert.equal(classify(u(0x10n, 0x20n, [0x30n, 0x32n]), u(0x40n, 0x50n, [0x60n, 0x62n])).verdict, 'unrelated');
  });

  it('is antisymmetric: swapping the nodes swaps ahead/behind', () => {
    const swap: Record<string, string> = { 'local-ahead': 'peer-ahead', 'peer-ahead': 'local-ahead' };
    // A small pool of generations, so that two nodes share UUIDs as often as DRBD's do.
    const gen = fc.constantFrom(0x1000n, 0x2000n, 0x3000n, 0x4000n, 0x5000n, 0x6000n);
    const node = fc.record({ current: gen, bitmap: fc.oneof(fc.constant(0n), gen), history: fc.tuple(fc.oneof(fc.constant(0n), gen), fc.oneof(fc.constant(0n), gen)) });
    type Node = { current: bigint; bitmap: bigint; history: [bigint, bigint] };
    // Only states DRBD can reach: a node's UUIDs are distinct generations, older ones behind
    // its current, and two nodes never each hold the other's current as an older generation
    // (a cycle; DRBD's own rules are not antisymmetric there: rule 60 fires both ways).
    const older = (n: Node) => [n.bitmap, ...n.history].filter((x) => x !== 0n);
    const sane = (n: Node) => new Set([n.current, ...older(n)]).size === older(n).length + 1;
    fc.assert(fc.property(node, node, (a, b) => {
      fc.pre(sane(a) && sane(b) && !(older(a).includes(b.current) && older(b).includes(a.current)));
      const ab = classify(a, b).verdict;
      const ba = classify(b, a).verdict;
      return ba === (swap[ab] ?? ab);
    }), { numRuns: Number(process.env.CLASSIFY_RUNS ?? 100) });
  });
});

// One row per branch of DRBD 8.4's drbd_uuid_compare() (drbd_receiver.c), with
// the rule number its kernel logs and the name DRBD 9 logs for it. UUIDs are
// [current, bitmap, history0, history1]; odd values check that bit 0 is masked.
const NEW_BM = 0x0001000000000000n;
interface Row {
  name: string;
  local: bigint[];
  peer: bigint[];
  localCrashed?: boolean;
  peerCrashed?: boolean;
  drbd9?: boolean;
  expect: [string, number, string, boolean];
}
const A = 0xA000n;
const B = 0xB000n;
const C = 0xC000n;
const D = 0xD000n;
const E = 0xE000n;
const ROWS: Row[] = [
  { name: 'both just created', local: [4n, 0n, 0n, 0n], peer: [5n, 0n, 0n, 0n], expect: ['in-sync', 10, 'just-created-both', false] },
  { name: 'self just created', local: [4n, 0n, 0n, 0n], peer: [A, 0n, 0n, 0n], expect: ['peer-ahead', 20, 'just-created-self', true] },
  { name: 'self zero, peer zero (rule 20 tests self first)', local: [0n, 0n, 0n, 0n], peer: [0n, 0n, 0n, 0n], expect: ['peer-ahead', 20, 'just-created-self', true] },
  { name: 'self zero, peer just created', local: [0n, 0n, 0n, 0n], peer: [4n, 0n, 0n, 0n], expect: ['local-ahead', 30, 'just-created-peer', true] },
  { name: 'peer just created', local: [A, 0n, 0n, 0n], peer: [4n, 0n, 0n, 0n], expect: ['local-ahead', 30, 'just-created-peer', true] },
  { name: 'source missed resync-finished', local: [A, B, C, 0n], peer: [A | 1n, 0n, B, C], expect: ['local-ahead', 34, 'sync-source-missed-finish', false] },
  { name: 'target: peer missed resync-finished', local: [A, 0n, B, C], peer: [A, B, C, 0n], expect: ['peer-ahead', 35, 'sync-target-peer-missed-finish', false] },
  { name: 'source: peer failed to write the sync UUID', local: [A, B, 0n, 0n], peer: [A, 0n, D, 0n], expect: ['local-ahead', 36, 'sync-source-peer-missed-finish', false] },
  { name: 'target: failed to write the sync UUID', local: [A, 0n, D, 0n], peer: [A, B, 0n, 0n], expect: ['peer-ahead', 37, 'sync-target-missed-finish', false] },
  { name: 'equal currents, both off', local: [A | 1n, 0n, B, 0n], peer: [A, 0n, B, 0n], expect: ['in-sync', 40, 'both-off', false] },
  { name: 'equal currents, this node crashed as primary', local: [A, 0n, B, 0n], peer: [A, 0n, B, 0n], localCrashed: true, expect: ['local-ahead', 40, 'crashed-primary', false] },
  { name: 'equal currents, the peer crashed as primary', local: [A, 0n, B, 0n], peer: [A, 0n, B, 0n], peerCrashed: true, expect: ['peer-ahead', 40, 'crashed-primary', false] },
  { name: 'equal currents, both crashed as primary: tie-break, refused', local: [A, 0n, B, 0n], peer: [A, 0n, B, 0n], localCrashed: true, peerCrashed: true, expect: ['history-split-brain', 40, 'crashed-primary', false] },
  { name: 'peer bitmap is our current', local: [A, 0n, B, 0n], peer: [C, A | 1n, B, 0n], expect: ['peer-ahead', 50, 'bitmap-peer', false] },
  { name: 'lost sync UUID (peer history0 = our current, peer bitmap = it + offset)', local: [A, 0n, B, 0n], peer: [C, A + NEW_BM, A | 1n, B], expect: ['peer-ahead', 51, 'sync-target-missed-start', false] },
  { name: 'peer history0 = our current without the offset: full sync by rule 60', local: [A, 0n, B, 0n], peer: [C, D, A, B], expect: ['peer-ahead', 60, 'history-peer', true] },
  { name: 'lost sync UUID between two DRBD 9 nodes: no fixup, rule 60', local: [A, 0n, B, 0n], peer: [C, A + NEW_BM, A, B], drbd9: true, expect: ['peer-ahead', 60, 'history-peer', true] },
  { name: 'our current in the peer older history', local: [A, 0n, B, 0n], peer: [C, D, E, A], expect: ['peer-ahead', 60, 'history-peer', true] },
  { name: 'our bitmap is the peer current', local: [C, A | 1n, B, 0n], peer: [A, 0n, B, 0n], expect: ['local-ahead', 70, 'bitmap-self', false] },
  { name: 'lost sync UUID seen from the source', local: [C, A + NEW_BM, A | 1n, B], peer: [A, 0n, B, 0n], expect: ['local-ahead', 71, 'sync-source-missed-start', false] },
  { name: 'our history0 = peer current without the offset: full sync by rule 80', local: [C, D, A, B], peer: [A, 0n, B, 0n], expect: ['local-ahead', 80, 'history-self', true] },
  { name: 'lost sync UUID from the source between two DRBD 9 nodes: rule 80', local: [C, A + NEW_BM, A, B], peer: [A, 0n, B, 0n], drbd9: true, expect: ['local-ahead', 80, 'history-self', true] },
  { name: 'split brain with a common bitmap UUID', local: [C, A, B, 0n], peer: [D, A | 1n, B, 0n], expect: ['split-brain', 90, 'bitmap-both', false] },
  { name: 'split brain known through history only', local: [C, D, A, 0x12n], peer: [E, 0x14n, 0x16n, A | 1n], expect: ['history-split-brain', 100, 'history-both', false] },
  { name: 'empty history slots on both sides count as shared (DRBD compares them)', local: [C, D, 0x12n, 0n], peer: [E, 0x14n, 0x16n, 0n], expect: ['history-split-brain', 100, 'history-both', false] },
  { name: 'unrelated data (the kernel still logs rule 100)', local: [C, D, 0x12n, 0x18n], peer: [E, 0x14n, 0x16n, 0x1An], expect: ['unrelated', 100, 'history-both', false] },
];

describe('classify: table of drbd_uuid_compare() rules', () => {
  const node = (v: bigint[], crashedPrimary = false, drbd9 = false): GenerationUuids => ({ current: v[0], bitmap: v[1], history: v.slice(2), crashedPrimary, drbd9 });
  for (const row of ROWS) {
    it(`rule ${row.expect[1]} (${row.expect[2]}): ${row.name}`, () => {
      const c = classify(node(row.local, row.localCrashed, row.drbd9), node(row.peer, row.peerCrashed, row.drbd9));
      assert.deepEqual([c.verdict, c.rule, c.drbd9Rule, c.fullSync], row.expect);
    });
  }

  it('uuidsOf reads the crashed-primary flag and the format', () => {
    const g = uuidsOf({ format: 'v09', flags: { crashedPrimary: true }, uuids: { current: 'A000', bitmap: '0', history: ['B000', '0'] } });
    assert.deepEqual([g.current, g.crashedPrimary, g.drbd9], [0xA000n, true, true]);
  });
});

import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { GenerationUuids, classify } from '../../lib/plan/classify';

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
    assert.equal(classify(u(0x10n, 0x20n, [0x30n, 0n]), u(0x40n, 0x50n, [0x60n, 0n])).verdict, 'unrelated');
  });

  it('is antisymmetric: swapping the nodes swaps ahead/behind', () => {
    const swap: Record<string, string> = { 'local-ahead': 'peer-ahead', 'peer-ahead': 'local-ahead' };
    const node = fc.record({ current: uuid, bitmap: fc.oneof(fc.constant(0n), uuid), history: fc.tuple(fc.oneof(fc.constant(0n), uuid), fc.oneof(fc.constant(0n), uuid)) });
    fc.assert(fc.property(node, node, (a, b) => {
      const ab = classify(a, b).verdict;
      const ba = classify(b, a).verdict;
      return ba === (swap[ab] ?? ab);
    }));
  });
});

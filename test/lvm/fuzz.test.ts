// Fuzz properties of the LVM reader (scripts/fuzz-lvm.ts): random and edited
// bytes and texts give null, a consistent view, or ERR_BAD_LVM, nothing else.
// `npm run fuzz` runs the same properties for longer.
import fc from 'fast-check';

import { readLvm } from '../../lib/lvm';
import { checkView, properties, seedImage } from '../../scripts/fuzz-lvm';

describe('lvm: fuzz properties', () => {
  it('the seed image itself reads as a consistent view', async () => {
    const v = await readLvm(seedImage().img.read, 64 << 20);
    if (!v || v.vg.lvs.length !== 2 || v.history.length !== 1) throw new Error(`unexpected seed view: ${JSON.stringify(v?.vg.lvs.map((l) => l.name))}`);
    checkView(v);
  });

  it('random bytes over label, mda header and text: null, a view or ERR_BAD_LVM', async () => {
    await fc.assert(properties.bytes, { numRuns: 150 });
  });

  it('header fields changed behind valid CRCs: null, a view or ERR_BAD_LVM', async () => {
    await fc.assert(properties.headers, { numRuns: 150 });
  });

  it('edited VG texts behind valid checksums: a view or ERR_BAD_LVM', async () => {
    await fc.assert(properties.texts, { numRuns: 150 });
  });
});

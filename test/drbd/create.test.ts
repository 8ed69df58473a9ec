// createMetadata() against `drbdmeta create-md`: the same bytes in the whole
// meta-data area for every placement, format and option, and drbdmeta's own
// dump-md and apply-al accept the result. Without drbdmeta the library's own
// reader checks what was written.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as create from '../../lib/drbd/create';
import { createMetadata, internalDataSize } from '../../lib/drbd/create';
import { readMetadataAt } from '../../lib/drbd/metadata';
import { MD_128MB_SECT } from '../../lib/drbd/superblock';
import { MDF_CONSISTENT, MDF_PRIMARY_IND, MDF_WAS_UP_TO_DATE, NodeState, makePair, randomUuid, restoreMetadata, splitBrainStates } from '../../scripts/split-brain';
import { requires, tmpDir } from '../helpers/env';
import { Fmt, Placement, drbdmeta, dump, readAt, restore, wordsPerSlot } from './drbdmeta';

const MiB = 1 << 20;

interface Case {
  name: string;
  fmt: Fmt;
  /** Backing device size; for external placements the meta-data device size too. */
  size: number;
  placement: Placement;
  maxPeers?: number;
  alStripes?: number;
  alStripeSizeKiB?: number;
  peerMaxBioSize?: number;
}

const CASES: Case[] = [
  { name: 'v08 internal, 64 MiB', fmt: 'v08', size: 64 * MiB, placement: 'internal' },
  { name: 'v08 internal, odd size (64 MiB + 3 sectors)', fmt: 'v08', size: 64 * MiB + 1536, placement: 'internal' },
  { name: 'v08 internal, 1 GiB + 5 KiB', fmt: 'v08', size: 1024 * MiB + 5120, placement: 'internal' },
  { name: 'v08 internal, striped AL (2 x 64 KiB), peer max bio 1 MiB', fmt: 'v08', size: 96 * MiB, placement: 'internal', alStripes: 2, alStripeSizeKiB: 64, peerMaxBioSize: MiB },
  { name: 'v08 flex-external', fmt: 'v08', size: 40 * MiB, placement: 'flex-external' },
  { name: 'v08 indexed 1', fmt: 'v08', size: 300 * MiB, placement: 1 },
  { name: 'v09 internal, 1 peer', fmt: 'v09', size: 64 * MiB, placement: 'internal', maxPeers: 1 },
  { name: 'v09 internal, 3 peers, 1 GiB - 512', fmt: 'v09', size: 1024 * MiB - 512, placement: 'internal', maxPeers: 3 },
  { name: 'v09 internal, striped AL (4 x 32 KiB)', fmt: 'v09', size: 48 * MiB, placement: 'internal', maxPeers: 2, alStripes: 4 },
  { name: 'v09 flex-external, 2 peers', fmt: 'v09', size: 40 * MiB, placement: 'flex-external', maxPeers: 2 },
  { name: 'v09 indexed 0', fmt: 'v09', size: 200 * MiB, placement: 0, maxPeers: 1 },
];

/** A sparse file of `size` bytes full of 0xA5 where the meta-data will go, so unwritten bytes show. */
function image(dir: string, name: string, size: number, dirty: Array<[number, number]>): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  const fd = fs.openSync(file, 'r+');
  for (const [off, len] of dirty) fs.writeSync(fd, Buffer.alloc(len, 0xa5), 0, len, off);
  fs.closeSync(fd);
  return file;
}

/** The byte range create-md may touch for a placement: the whole meta-data area. */
function area(c: Case): [number, number] {
  if (c.placement === 'internal') return [Math.max(0, c.size - 64 * MiB), c.size - Math.max(0, c.size - 64 * MiB)];
  if (c.placement === 'flex-external') return [0, c.size];
  return [c.placement * MD_128MB_SECT * 512, Math.min(c.size - c.placement * MD_128MB_SECT * 512, 2 * MiB)];
}

const createMdArgs = (c: Case): string[] => [
  'create-md',
  ...(c.peerMaxBioSize !== undefined ? ['--peer-max-bio-size', String(c.peerMaxBioSize)] : []),
  ...(c.alStripes !== undefined ? ['--al-stripes', String(c.alStripes)] : []),
  ...(c.alStripeSizeKiB !== undefined ? ['--al-stripe-size-kB', String(c.alStripeSizeKiB)] : []),
  ...(c.fmt === 'v09' ? [String(c.maxPeers ?? 1)] : []),
];

/** dump-md without its header (date and command line). */
const body = (dump: string): string => dump.split('\n').filter((l) => !/^# (DRBD meta data dump|\d{4}-|vm> |$)|^#$/.test(l)).join('\n');

async function ours(c: Case, dir: string): Promise<{ backing: string; mdDev: string }> {
  const [off, len] = area(c);
  const backing = image(dir, 'ours.img', c.size, [[off, len]]);
  const mdDev = c.placement === 'internal' ? backing : image(dir, 'ours-md.img', c.size, [[off, len]]);
  await createMetadata(backing, {
    format: c.fmt,
    ...(c.placement === 'internal' ? {} : { metaDevice: mdDev, index: c.placement === 'flex-external' ? 'flex' : c.placement }),
    maxPeers: c.maxPeers,
    alStripes: c.alStripes,
    alStripeSizeKiB: c.alStripeSizeKiB,
    peerMaxBioSize: c.peerMaxBioSize,
  });
  return { backing, mdDev };
}

describe('createMetadata() writes what drbdmeta create-md writes', function () {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir('bisync-create-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const c of CASES) {
    it(`${c.name}: same meta-data area bytes and dump-md; drbdmeta apply-al is a no-op`, async function () {
      requires(this, 'drbdmeta');
      const [off, len] = area(c);
      const theirs = image(dir, 'theirs.img', c.size, [[off, len]]);
      drbdmeta({ fmt: c.fmt, mdDev: theirs, placement: c.placement }, createMdArgs(c));
      const { mdDev } = await ours(c, dir);
      const t = { fmt: c.fmt, mdDev, placement: c.placement };
      assert.ok(readAt(mdDev, off, len).equals(readAt(theirs, off, len)), 'the meta-data area is byte for byte what drbdmeta wrote');
      assert.equal(body(drbdmeta(t, ['dump-md'])), body(drbdmeta({ ...t, mdDev: theirs }, ['dump-md'])));
      drbdmeta(t, ['apply-al']);
      assert.ok(readAt(mdDev, off, len).equals(readAt(theirs, off, len)), 'apply-al changed nothing');
    });
  }

  it('v09 with a size, a node id and peer slots (what the kernel writes on attach): drbdmeta reads those fields', async function () {
    requires(this, 'drbdmeta');
    const dev = image(dir, 'v09.img', 64 * MiB, []);
    const r = await createMetadata(dev, { format: 'v09', maxPeers: 2, sizeBytes: 32 * MiB, nodeId: 1, peerNodeIds: [2, 0] });
    const d = drbdmeta({ fmt: 'v09', mdDev: dev, placement: 'internal' }, ['dump-md']);
    assert.match(d, /^node-id 1;$/m);
    assert.match(d, /^la-size-sect 65536;$/m);
    assert.match(d, /^peer\[2\] \{\s*bitmap-index 0;/m);
    assert.match(d, /^peer\[0\] \{\s*bitmap-index 1;/m);
    assert.match(d, /^# bits-set 0;$/m);
    assert.equal(r.laSizeSectors, 65536);
  });
});

describe('createMetadata() read back by the library', function () {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir('bisync-create-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('v08 internal: UUID_JUST_CREATED, clean, no bits, the layout drbdmeta uses', async () => {
    const dev = image(dir, 'a.img', 64 * MiB, [[63 * MiB, MiB]]);
    const r = await createMetadata(dev, { format: 'v08' });
    assert.deepEqual([r.format, r.placement, r.mdOffset, r.mdSizeSectors, r.alOffset, r.bmOffset], ['v08', { kind: 'internal' }, 64 * MiB - 4096, 80, 64 * MiB - 4096 - 32768, 64 * MiB - 80 * 512]);
    assert.equal(r.uuids.current, '0000000000000004');
    assert.deepEqual([r.clean, r.flags.alClean, r.flags.consistent, r.bitsSet, r.laSizeSectors], [true, true, false, 0, 0]);
    assert.ok(readAt(dev, r.bmOffset, r.alOffset - r.bmOffset).equals(Buffer.alloc(r.alOffset - r.bmOffset)), 'bitmap zeroed');
  });

  it('v09 flex-external with a size: every slot of the bitmap for that size is zeroed and reads back empty', async () => {
    const backing = image(dir, 'b.img', 64 * MiB, []);
    const md = image(dir, 'md.img', 8 * MiB, [[0, 8 * MiB]]);
    const r = await createMetadata(backing, { format: 'v09', metaDevice: md, maxPeers: 2, sizeBytes: 64 * MiB, nodeId: 0, peerNodeIds: [1] });
    assert.deepEqual([r.placement, r.laSizeSectors, r.nodeId, r.maxPeers, r.bitsSet], [{ kind: 'flex-external', metaDevice: md }, 128 * 1024, 0, 2, 0]);
    assert.deepEqual(r.peers?.map((p) => [p.nodeId, p.bitmapIndex]), [[1, 0]]);
    const { md: m, close } = await readMetadataAt(backing, { metaDevice: md });
    try {
      assert.deepEqual(await m.changeSet(1), []);
    } finally {
      await close();
    }
  });

  it('internalDataSize() is the usable size createMetadata() then leaves, for every internal case', async () => {
    for (const c of CASES.filter((x) => x.placement === 'internal')) {
      const dev = image(dir, 'size.img', c.size, []);
      const r = await createMetadata(dev, { format: c.fmt, maxPeers: c.maxPeers, alStripes: c.alStripes, alStripeSizeKiB: c.alStripeSizeKiB, overwrite: true });
      assert.equal(internalDataSize(c.size, { format: c.fmt, maxPeers: c.maxPeers, alStripes: c.alStripes, alStripeSizeKiB: c.alStripeSizeKiB }), r.bmOffset, c.name);
      fs.rmSync(dev);
    }
    assert.throws(() => internalDataSize(32 * 1024, { format: 'v08' }), /a 32768-byte device is too small for internal v08 meta-data/);
    assert.throws(() => internalDataSize(MiB, { format: 'v08', maxPeers: 2 }), /maxPeers must be an integer 1 to 1, got 2/);
  });

  it('makePair() writes each device\'s meta-data once', async () => {
    const calls: string[] = [];
    const mod = create as { createMetadata: typeof createMetadata };
    const real = mod.createMetadata;
    mod.createMetadata = (device, o) => (calls.push(device), real(device, o));
    try {
      const [a, b] = [image(dir, 'a.img', 24 * MiB, []), image(dir, 'b.img', 24 * MiB, [])];
      const size = await makePair(a, b, splitBrainStates([[0, 8192]], [[MiB, 4096]]));
      assert.equal(size, internalDataSize(24 * MiB, { format: 'v08' }));
      assert.deepEqual(calls, [a, b]);
    } finally {
      mod.createMetadata = real;
    }
  });

  it('refuses to replace meta-data that is there unless asked, and changes nothing', async () => {
    const dev = image(dir, 'c.img', 64 * MiB, []);
    await createMetadata(dev, { format: 'v08' });
    const before = fs.readFileSync(dev);
    await assert.rejects(createMetadata(dev, { format: 'v09' }), { code: 'ERR_REFUSED', message: /already holds v08 DRBD meta-data at offset 67104768/ });
    assert.ok(fs.readFileSync(dev).equals(before));
    const r = await createMetadata(dev, { format: 'v09', overwrite: true });
    assert.equal(r.format, 'v09');
  });

  it('rejects bad options naming the option and the value, before writing anything', async () => {
    const dev = image(dir, 'd.img', 16 * MiB, []);
    const before = fs.readFileSync(dev);
    const bad: Array<[object, RegExp]> = [
      [{ format: 'v10' }, /format must be 'v08' or 'v09', got "v10"/],
      [{ format: 'v08', maxPeers: 2 }, /maxPeers must be an integer 1 to 1, got 2/],
      [{ format: 'v09', maxPeers: 33 }, /maxPeers must be an integer 1 to 32, got 33/],
      [{ format: 'v08', alStripeSizeKiB: 6 }, /alStripeSizeKiB must be a multiple of 4, got 6/],
      [{ format: 'v08', sizeBytes: 1000 }, /sizeBytes must be a multiple of 512, got 1000/],
      [{ format: 'v08', sizeBytes: 16 * MiB }, /sizeBytes 16777216 is more than the \d+ bytes/],
      [{ format: 'v08', nodeId: 1 }, /v09 fields/],
      [{ format: 'v09', nodeId: 1, peerNodeIds: [1] }, /peerNodeIds\[0\] is 1: this node's own id/],
      [{ format: 'v09', maxPeers: 2, peerNodeIds: [3, 3] }, /peerNodeIds\[1\] is 3: given twice/],
      [{ format: 'v08', index: 2 }, /index 2 needs a meta-data device/],
    ];
    for (const [opts, re] of bad) await assert.rejects(createMetadata(dev, opts as never), re, JSON.stringify(opts));
    assert.ok(fs.readFileSync(dev).equals(before), 'nothing written');
    await assert.rejects(createMetadata(dev, { format: 'v08', metaDevice: image(dir, 'tiny.img', 16384, []) }), { code: 'ERR_BAD_METADATA', message: /too small for v08 meta-data/ });
  });
});

describe('split-brain pairs: the library writes what drbdmeta create-md + restore-md write', function () {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir('bisync-create-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** drbdmeta's way: create-md, then restore-md of a dump with the node's state. */
  function viaDrbdmeta(file: string, fmt: Fmt, nodeId: 0 | 1, s: NodeState, dataSize: number, bits: Array<[number, number]>): void {
    const t = { fmt, mdDev: file, placement: 'internal' as const };
    drbdmeta(t, fmt === 'v09' ? ['create-md', '1'] : ['create-md']);
    const m = dump(t);
    const words = new BigUint64Array(wordsPerSlot(dataSize / 512, 4096, 1));
    for (const [off, len] of bits) for (let b = off / 4096; b < (off + len) / 4096; b++) words[b >> 6] |= 1n << BigInt(b & 63);
    Object.assign(m, { laSizeSect: dataSize / 512, current: s.current, words: [[...words]] });
    if (fmt === 'v08') Object.assign(m, { bitmap: s.bitmap, history: [...s.history], flags: s.flags });
    else {
      Object.assign(m, { nodeId, flags: s.flags! | 0x80, history: [...s.history, ...Array<bigint>(30).fill(0n)] });
      m.peers[1 - nodeId] = { bitmapIndex: 0, bitmapUuid: s.bitmap, bitmapDagtag: 0n, flags: 0 };
    }
    restore(t, m, dir);
  }

  for (const fmt of ['v08', 'v09'] as const) {
    it(`${fmt}: UUIDs, flags, size and bitmap land on the same bytes`, async function () {
      requires(this, 'drbdmeta');
      const size = 40 * MiB;
      const state: NodeState = { current: randomUuid(), bitmap: randomUuid(), history: [randomUuid(), randomUuid()], flags: MDF_CONSISTENT | MDF_WAS_UP_TO_DATE | MDF_PRIMARY_IND, writes: [] };
      const bits: Array<[number, number]> = [[0, 4096], [8 * MiB, 3 * 4096], [20 * MiB + 4096, MiB]];
      const [a, b] = [image(dir, 'a.img', size, []), image(dir, 'b.img', size, [])];
      const dataSize = 36 * MiB;
      viaDrbdmeta(a, fmt, 1, state, dataSize, bits);
      await restoreMetadata(b, fmt, 1, state, dataSize, bits);
      const from = size - MiB;
      assert.ok(readAt(b, from, MiB).equals(readAt(a, from, MiB)), 'the meta-data area is what drbdmeta restore-md wrote');
    });
  }
});

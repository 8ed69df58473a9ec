// Makes two DRBD backing devices (image files or block devices) in a chosen
// relation, the way DRBD leaves them: data written on each side, bitmap bits
// for those writes, generation UUIDs as DRBD rotates them. The meta-data is
// written by the library (createMetadata(), which writes what drbdmeta
// create-md does, then update()), so the demo needs no drbd-utils; the tests
// check the result with drbdmeta where it is installed. Used by the demo,
// the benchmarks and the tests.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { Extent } from '../lib/device/extent';
import { BlockDevice } from '../lib/device/block-device';
import { createMetadata, internalDataSize } from '../lib/drbd/create';
import { readMetadataAt } from '../lib/drbd/metadata';
import { formatUuid } from '../lib/drbd/uuid';
import type { MetadataFlags } from '../lib/drbd/types';

export type Fmt = 'v08' | 'v09';

export interface NodeState {
  current: bigint;
  bitmap: bigint;
  history: [bigint, bigint];
  /** MDF_* flags; default consistent | was-up-to-date. */
  flags?: number;
  /** Byte ranges this node wrote since the split (4 KiB aligned): random data, bitmap bits set. */
  writes: Extent[];
}

export interface PairSpec {
  local: NodeState;
  peer: NodeState;
  /** Ranges both nodes wrote with the same bytes (bits set on both). */
  identicalWrites?: Extent[];
  /** Fill the whole data area with common random data first (default: leave zeros). */
  commonData?: boolean;
  /** Only set bitmap bits; write no data (for huge sparse benchmark devices). */
  bitsOnly?: boolean;
  /** Meta-data format (default v08, DRBD 8.4). */
  format?: Fmt;
  /** Usable size in bytes (a sector multiple) below what the meta-data leaves, as DRBD's `size` option sets it. */
  dataSize?: number;
}

export const MDF_CONSISTENT = 1 << 0;
export const MDF_PRIMARY_IND = 1 << 1;
export const MDF_WAS_UP_TO_DATE = 1 << 4;
export const MDF_CRASHED_PRIMARY = 1 << 6;

const BLOCK = 4096;

/** Random 64-bit UUID with bit 0 clear, as drbdmeta makes them. */
export function randomUuid(): bigint {
  return randomBytes(8).readBigUInt64BE() & ~1n;
}

/** The classic split brain: both nodes were primary while disconnected, from common generation C. */
export function splitBrainStates(localWrites: Extent[], peerWrites: Extent[]): { local: NodeState; peer: NodeState } {
  const c = randomUuid();
  const h: [bigint, bigint] = [randomUuid(), randomUuid()];
  return {
    local: { current: randomUuid(), bitmap: c, history: h, writes: localWrites },
    peer: { current: randomUuid(), bitmap: c, history: h, writes: peerWrites },
  };
}

const MDF_AL_CLEAN = 1 << 7;

/** Creates internal meta-data (v09: one peer slot) and returns the usable data size in bytes. */
export async function createInternal(device: string, fmt: Fmt = 'v08', sizeBytes?: number, nodeId?: 0 | 1): Promise<number> {
  const v09 = fmt === 'v09' && nodeId !== undefined ? { nodeId, peerNodeIds: [1 - nodeId] } : {};
  const r = await createMetadata(device, { format: fmt, overwrite: true, sizeBytes, ...v09 });
  return r.bmOffset;
}

/** The named flags of an MDF_* word; v09 keeps its AL clean, as DRBD 9 does when it goes down. */
function namedFlags(word: number, fmt: Fmt): Partial<Omit<MetadataFlags, 'raw'>> {
  const on = (b: number): boolean => (word & b) !== 0;
  const shared = { consistent: on(1 << 0), primary: on(1 << 1), wasUpToDate: on(1 << 4), crashedPrimary: on(1 << 6), alClean: fmt === 'v09' || on(MDF_AL_CLEAN), alDisabled: on(1 << 8) };
  return fmt === 'v08' ? { ...shared, connected: on(1 << 2), fullSync: on(1 << 3), peerOutdated: on(1 << 5) } : shared;
}

/**
 * Writes the node's UUIDs, flags and bitmap (exactly `bitExtents`) on new
 * meta-data of usable size `dataSize`. v09: this node has node id `nodeId`,
 * its peer the other id of {0, 1}, one bitmap slot.
 */
export async function restoreMetadata(device: string, fmt: Fmt, nodeId: 0 | 1, state: NodeState, dataSize: number, bitExtents: Extent[]): Promise<void> {
  await createInternal(device, fmt, dataSize, nodeId);
  const { md, close } = await readMetadataAt(device, { format: fmt }, { write: true });
  try {
    await md.update({
      uuids: { current: formatUuid(state.current), bitmap: formatUuid(state.bitmap), history: state.history.map(formatUuid) },
      peerNodeId: fmt === 'v09' ? 1 - nodeId : undefined,
      flags: namedFlags(state.flags ?? (MDF_CONSISTENT | MDF_WAS_UP_TO_DATE), fmt),
      setBits: bitExtents,
    });
  } finally {
    await close();
  }
}

function writeRanges(fd: number, ranges: Extent[], data: (len: number) => Buffer): void {
  for (const [off, len] of ranges) fs.writeSync(fd, data(len), 0, len, off);
}

/**
 * Lays out both devices: meta-data, common data, each side's writes, and the
 * meta-data DRBD would have after both sides went down. Returns the usable size.
 */
export async function makePair(localDevice: string, peerDevice: string, spec: PairSpec): Promise<number> {
  const fmt = spec.format ?? 'v08';
  // The usable size from the device sizes: restoreMetadata() writes each device's meta-data once.
  let dataSize = internalDataSize(await deviceSize(localDevice), { format: fmt });
  const peerSize = internalDataSize(await deviceSize(peerDevice), { format: fmt });
  if (peerSize !== dataSize) throw new Error(`devices differ in usable size: ${dataSize} vs ${peerSize}`);
  if (spec.dataSize !== undefined) {
    if (spec.dataSize > dataSize || spec.dataSize % 512) throw new RangeError(`dataSize must be a sector multiple up to ${dataSize}, got ${spec.dataSize}`);
    dataSize = spec.dataSize;
  }
  const identical = spec.identicalWrites ?? [];
  const shared = identical.map(([, len]) => randomBytes(len));
  for (const [nodeId, device, node] of [[0, localDevice, spec.local], [1, peerDevice, spec.peer]] as const) {
    if (!spec.bitsOnly) writeData(device, node, identical, shared, spec.commonData ? dataSize : 0);
    await restoreMetadata(device, fmt, nodeId, node, dataSize, [...node.writes, ...identical].sort((a, b) => a[0] - b[0]));
  }
  return dataSize;
}

async function deviceSize(device: string): Promise<number> {
  const d = await BlockDevice.open(device, { direct: false });
  try {
    return d.size;
  } finally {
    await d.close();
  }
}

function writeData(device: string, node: NodeState, identical: Extent[], shared: Buffer[], commonSize: number): void {
  const fd = fs.openSync(device, 'r+');
  try {
    if (commonSize) writeCommon(fd, commonSize);
    writeRanges(fd, node.writes, (len) => randomBytes(len));
    identical.forEach(([off, len], i) => fs.writeSync(fd, shared[i], 0, len, off));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Same pseudo-random bytes on both devices (seeded by offset), so the base data is shared history. */
export function writeCommon(fd: number, size: number): void {
  const chunk = Buffer.alloc(1 << 20);
  for (let off = 0; off < size; off += chunk.length) {
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE(((off + i) * 2654435761) >>> 0, i);
    fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
  }
}

/** Random block-aligned ranges inside [0, size), sorted and disjoint from `avoid`. */
export function randomRanges(size: number, count: number, maxBlocks: number, avoid: Extent[] = []): Extent[] {
  const out: Extent[] = [];
  const taken = (o: number, l: number): boolean => [...avoid, ...out].some(([a, b]) => o < a + b && a < o + l);
  for (let tries = 0; out.length < count && tries < count * 50; tries++) {
    const blocks = 1 + Math.floor(Math.random() * maxBlocks);
    const off = Math.floor(Math.random() * (size / BLOCK - blocks)) * BLOCK;
    if (!taken(off, blocks * BLOCK)) out.push([off, blocks * BLOCK]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** One run per slot of size/count bytes at a random place in it: fast for millions of runs, sorted, disjoint. */
export function spreadRanges(size: number, count: number, runBytes: number): Extent[] {
  const slot = Math.floor(size / count / BLOCK) * BLOCK;
  const out: Extent[] = [];
  for (let i = 0; i < count && slot > runBytes; i++) {
    out.push([i * slot + Math.floor(Math.random() * ((slot - runBytes) / BLOCK)) * BLOCK, runBytes]);
  }
  return out;
}

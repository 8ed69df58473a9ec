// New DRBD meta-data, as `drbdmeta create-md` writes it (v08 and v09, internal,
// flexible external or indexed external): a zeroed bitmap, an initialised
// activity log, then the superblock. Byte for byte what drbdmeta 9.22 writes
// for the same options, so drbdmeta and the kernel accept it; a caller that
// lays out a device without DRBD may also set what the kernel writes on the
// first attach (the usable size, v09 node ids and peer slots).
import { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode } from '../device/errors';
import { initializedAl } from './activity-log';
import { DrbdMetadata, MetadataLocation } from './metadata';
import { Index, MAGIC, MAGIC_OFFSET, MDF, MD_128MB_SECT, PEERS_MAX, SUPERBLOCK_SIZE, Superblock, encodeLayout, encodeSuperblock, formatOfMagic, superblockOffset } from './superblock';
import type { MetadataFormat, MetadataReport } from './types';

/** `drbdmeta create-md`'s UUID_JUST_CREATED: DRBD does the initial full sync from it. */
export const UUID_JUST_CREATED = 4n;
const AL_EXTENTS_DEFAULT = 257;
const BYTES_PER_BIT = 4096;
const ZERO_CHUNK = 1 << 20;

export interface CreateMetadataOptions extends MetadataLocation {
  format: MetadataFormat;
  /** v09: bitmap slots (create-md's max_peers), 1 to 32; default 1. */
  maxPeers?: number;
  /** create-md --al-stripes; default 1. */
  alStripes?: number;
  /** create-md --al-stripe-size-kB; default 32. */
  alStripeSizeKiB?: number;
  /** create-md --peer-max-bio-size; default 0 (unknown). */
  peerMaxBioSize?: number;
  /** Replace meta-data that is already there (create-md asks first); default false. */
  overwrite?: boolean;
  /**
   * What the kernel writes on the first attach, for devices laid out without
   * DRBD: the usable size in bytes (a multiple of 512; la_size_sect). Default 0,
   * as create-md leaves it. Its bitmap bits are zeroed also on external meta-data.
   */
  sizeBytes?: number;
  /** v09: this node's id (default -1, unset). */
  nodeId?: number;
  /** v09: peers that get bitmap slots 0, 1, ... in this order. */
  peerNodeIds?: number[];
}

/** The placement's numbers, in 512-byte sectors as the superblock stores them. */
interface Geometry {
  mdOffset: number;
  mdSizeSect: number;
  alOffsetSect: number;
  bmOffsetSect: number;
  alSizeSect: number;
  /** Bytes of bitmap to zero, from bmStart. */
  zeroBytes: number;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new RangeError(`${what} must be an integer ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/** On-disk bitmap bytes for `sectors` of data (drbd_capacity_to_on_disk_bm_sect, in bytes). */
function bitmapBytes(sectors: number, maxPeers: number): number {
  const bits = align(Math.ceil(sectors / (BYTES_PER_BIT / 512)), 64);
  return align((bits / 8) * maxPeers, 4096);
}

function geometry(index: Index, mdDeviceSize: number, backingSize: number, alSizeSect: number, maxPeers: number, sizeSect: number): Geometry {
  const mdOffset = superblockOffset(index, mdDeviceSize);
  if (index === 'internal') {
    const bm = bitmapBytes(Math.floor(backingSize / 512), maxPeers);
    const mdSizeSect = bm / 512 + 8 + alSizeSect;
    // The whole bitmap area, as create-md does for internal meta-data.
    return { mdOffset, mdSizeSect, alOffsetSect: -alSizeSect, bmOffsetSect: -mdSizeSect + 8, alSizeSect, zeroBytes: bm };
  }
  const mdSizeSect = index === 'flex' ? Math.floor(mdDeviceSize / 512) : MD_128MB_SECT;
  const bmOffsetSect = 8 + alSizeSect;
  // create-md knows no backing device here: it zeroes the bits a device the
  // size of the meta-data device would need (and we those of the size asked for).
  const zeroBytes = Math.max(bitmapBytes(Math.floor(mdDeviceSize / 512), maxPeers), bitmapBytes(sizeSect, maxPeers));
  return { mdOffset, mdSizeSect, alOffsetSect: 8, bmOffsetSect, alSizeSect, zeroBytes: Math.max(0, Math.min(zeroBytes, (mdSizeSect - bmOffsetSect) * 512)) };
}

function newSuperblock(o: CreateMetadataOptions, g: Geometry, alStripes: number, alStripeSize4k: number, maxPeers: number, sizeSect: number): Superblock {
  const v09 = o.format === 'v09';
  const peers = v09 ? Array.from({ length: PEERS_MAX }, (_, nodeId) => ({ nodeId, bitmapUuid: 0n, bitmapDagtag: 0n, flags: 0, bitmapIndex: -1 })) : [];
  (o.peerNodeIds ?? []).forEach((n, slot) => (peers[n].bitmapIndex = slot));
  return {
    format: o.format,
    magic: v09 ? MAGIC.V09 : MAGIC.V08,
    laSizeSect: sizeSect,
    current: UUID_JUST_CREATED,
    bitmap: 0n,
    history: Array<bigint>(v09 ? 32 : 2).fill(0n),
    deviceUuid: 0n,
    flags: MDF.AL_CLEAN,
    mdSizeSect: g.mdSizeSect,
    alOffset: g.alOffsetSect,
    alNrExtents: AL_EXTENTS_DEFAULT,
    bmOffset: g.bmOffsetSect,
    bmBytesPerBit: BYTES_PER_BIT,
    laPeerMaxBioSize: o.peerMaxBioSize ?? 0,
    alStripes,
    alStripeSize4k,
    maxPeers,
    nodeId: v09 ? (o.nodeId ?? -1) : -1,
    peers,
  };
}

/** A new superblock: the fields encodeSuperblock writes, and the layout fields it leaves to the original bytes. */
function encodeNew(sb: Superblock): Buffer {
  return encodeLayout(sb, encodeSuperblock(sb, Buffer.alloc(SUPERBLOCK_SIZE)));
}

function checkOptions(o: Pick<CreateMetadataOptions, 'format' | 'maxPeers' | 'alStripes' | 'alStripeSizeKiB' | 'peerMaxBioSize' | 'sizeBytes' | 'nodeId' | 'peerNodeIds'>): { alStripes: number; alStripeSize4k: number; maxPeers: number } {
  if (typeof o !== 'object' || o === null) throw new TypeError('createMetadata options must be an object');
  if (o.format !== 'v08' && o.format !== 'v09') throw new RangeError(`meta-data format must be 'v08' or 'v09', got ${JSON.stringify(o.format)}`);
  const v09 = o.format === 'v09';
  const maxPeers = int(o.maxPeers ?? 1, 'maxPeers', 1, v09 ? PEERS_MAX : 1);
  const alStripes = int(o.alStripes ?? 1, 'alStripes', 1, 1024);
  const kib = int(o.alStripeSizeKiB ?? 32, 'alStripeSizeKiB', 4, 16 << 20);
  if (kib % 4) throw new RangeError(`alStripeSizeKiB must be a multiple of 4, got ${kib}`);
  if (alStripes * kib < 32 || alStripes * kib > 16 << 20) throw new RangeError(`activity log of ${alStripes} x ${kib} KiB must be 32 KiB to 16 GiB`);
  if (o.peerMaxBioSize !== undefined) int(o.peerMaxBioSize, 'peerMaxBioSize', 0, 2 ** 32 - 1);
  if (o.sizeBytes !== undefined && (int(o.sizeBytes, 'sizeBytes', 0, Number.MAX_SAFE_INTEGER) % 512)) throw new RangeError(`sizeBytes must be a multiple of 512, got ${o.sizeBytes}`);
  if (!v09 && (o.nodeId !== undefined || o.peerNodeIds !== undefined)) throw new RangeError('nodeId and peerNodeIds are v09 fields; v08 meta-data has neither');
  if (o.nodeId !== undefined) int(o.nodeId, 'nodeId', -1, PEERS_MAX - 1);
  const peers = o.peerNodeIds ?? [];
  if (!Array.isArray(peers) || peers.length > maxPeers) throw new RangeError(`peerNodeIds must be an array of at most maxPeers (${maxPeers}) node ids, got ${JSON.stringify(o.peerNodeIds)}`);
  peers.forEach((n, i) => {
    int(n, `peerNodeIds[${i}]`, 0, PEERS_MAX - 1);
    if (n === o.nodeId || peers.indexOf(n) !== i) throw new RangeError(`peerNodeIds[${i}] is ${n}: ${n === o.nodeId ? "this node's own id" : 'given twice'}`);
  });
  return { alStripes, alStripeSize4k: kib / 4, maxPeers };
}

async function zero(dev: BlockDevice, start: number, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(Math.min(bytes, ZERO_CHUNK));
  for (let off = 0; off < bytes; off += chunk.length) await dev.write(chunk.subarray(0, Math.min(chunk.length, bytes - off)), start + off);
}

/** Throws unless overwriting was asked for when DRBD meta-data is already there. */
async function refuseExisting(dev: BlockDevice, mdOffset: number, overwrite: boolean | undefined): Promise<void> {
  if (overwrite) return;
  const magic = (await dev.read(mdOffset + MAGIC_OFFSET, 4)).readUInt32BE(0);
  const format = formatOfMagic(magic);
  if (format) {
    throw new BisyncError(ErrorCode.REFUSED, `'${dev.path}' already holds ${format} DRBD meta-data at offset ${mdOffset}`, { hint: 'pass overwrite: true to replace it (its UUIDs and bitmap are lost)' });
  }
}

/**
 * The usable size in bytes that new internal meta-data leaves on a device of `deviceSize`
 * bytes (createMetadata's report.bmOffset), known before anything is written.
 */
export function internalDataSize(deviceSize: number, options: Pick<CreateMetadataOptions, 'format' | 'maxPeers' | 'alStripes' | 'alStripeSizeKiB'>): number {
  const { alStripes, alStripeSize4k, maxPeers } = checkOptions(options);
  const g = geometry('internal', deviceSize, deviceSize, alStripes * alStripeSize4k * 8, maxPeers, 0);
  const usable = g.mdOffset + g.bmOffsetSect * 512;
  if (usable <= 0) throw new RangeError(`a ${deviceSize}-byte device is too small for internal ${options.format} meta-data`);
  return usable;
}

/**
 * Writes new meta-data for `device` (internal unless `metaDevice` is given;
 * external: flexible, or indexed with a numeric `index`) and returns its
 * `inspect` report. The usable size left for data is `report.bmOffset` for
 * internal meta-data, the backing device's size for external.
 */
export async function createMetadata(device: string, options: CreateMetadataOptions): Promise<MetadataReport> {
  const { alStripes, alStripeSize4k, maxPeers } = checkOptions(options);
  const external = options.metaDevice !== undefined && options.metaDevice !== device;
  const index: Index = options.index ?? (options.metaDevice !== undefined ? 'flex' : 'internal');
  if (index !== 'internal' && options.metaDevice === undefined) throw new RangeError(`meta-data index ${index} needs a meta-data device`);
  if (typeof index === 'number') {
    int(index, 'index', 0, 255);
    if (alStripes * alStripeSize4k !== 8) throw new RangeError(`indexed meta-data has the fixed 32 KiB activity log, got ${alStripes} x ${alStripeSize4k * 4} KiB`);
  }
  const backing = await BlockDevice.open(device, { write: true });
  let meta: BlockDevice | undefined;
  try {
    if (external) meta = await BlockDevice.open(options.metaDevice!, { write: true });
    const mdDev = meta ?? backing;
    const sizeSect = (options.sizeBytes ?? 0) / 512;
    const g = geometry(index, mdDev.size, backing.size, alStripes * alStripeSize4k * 8, maxPeers, sizeSect);
    const alStart = g.mdOffset + g.alOffsetSect * 512;
    const bmStart = g.mdOffset + g.bmOffsetSect * 512;
    const areaStart = Math.min(g.mdOffset, alStart, bmStart);
    if (areaStart < 0 || areaStart + g.mdSizeSect * 512 > mdDev.size || g.mdSizeSect < 8 + g.alSizeSect + 8) {
      throw new BisyncError(ErrorCode.BAD_METADATA, `'${mdDev.path}' (${mdDev.size} bytes) is too small for ${options.format} meta-data at index ${index}: it needs [${areaStart}, ${areaStart + g.mdSizeSect * 512})`);
    }
    await refuseExisting(mdDev, g.mdOffset, options.overwrite);
    const sb = newSuperblock(options, g, alStripes, alStripeSize4k, maxPeers, sizeSect);
    const usable = index === 'internal' ? bmStart : Math.min(backing.size, ((g.mdSizeSect - g.bmOffsetSect) * 512 * 8 * BYTES_PER_BIT) / maxPeers);
    if (sizeSect * 512 > usable) throw new RangeError(`sizeBytes ${sizeSect * 512} is more than the ${usable} bytes this meta-data leaves for data`);
    // The superblock last: until it is written nothing claims the new layout.
    await zero(mdDev, bmStart, g.zeroBytes);
    await mdDev.write(initializedAl(g.alSizeSect * 512), alStart);
    await mdDev.flush();
    await mdDev.write(encodeNew(sb), g.mdOffset);
    await mdDev.flush();
    const md = await DrbdMetadata.read(backing, { metaDevice: external ? meta : index === 'internal' ? undefined : backing, index, format: options.format });
    return await md.report();
  } finally {
    await Promise.all([backing.close(), meta?.close()]);
  }
}

// The 4 KiB DRBD superblock, v08 (DRBD 8.4) and v09 (DRBD 9): decoding,
// validation against the placement, and encoding back into the same bytes (we
// patch the fields we own so reserved and unknown fields survive a rewrite).
import { BisyncError, ErrorCode } from '../device/errors';
import type { MetadataFormat } from './types';

export const MAGIC = {
  V08: 0x8374026b,
  V84_UNCLEAN: 0x8374026c,
  V09: 0x8374026d,
} as const;

/** Superblock flag bits (MDF_*), v08 names; v09 shares bits 0,1,4,6,7,8. */
export const MDF = {
  CONSISTENT: 1 << 0,
  PRIMARY_IND: 1 << 1,
  CONNECTED_IND: 1 << 2,
  FULL_SYNC: 1 << 3,
  WAS_UP_TO_DATE: 1 << 4,
  PEER_OUT_DATED: 1 << 5,
  CRASHED_PRIMARY: 1 << 6,
  AL_CLEAN: 1 << 7,
  AL_DISABLED: 1 << 8,
} as const;

/** v09 per-peer slot flags (MDF_PEER_*). */
export const MDF_PEER = {
  CONNECTED: 1 << 0,
  OUTDATED: 1 << 1,
  FENCING: 1 << 2,
  FULL_SYNC: 1 << 3,
  DEVICE_SEEN: 1 << 4,
  NODE_EXISTS: 1 << 16,
} as const;

export const SUPERBLOCK_SIZE = 4096;
export const MD_128MB_SECT = (128 * 1024 * 1024) / 512;
export const PEERS_MAX = 32;
export const HISTORY_V09 = 32;
/** Where the magic is, in both formats. */
export const MAGIC_OFFSET = 0x3c;
const PEERS_OFF = 0x70;
const PEER_SIZE = 32;
const HISTORY_OFF = 0x470;

export interface PeerSlot {
  nodeId: number;
  bitmapUuid: bigint;
  bitmapDagtag: bigint;
  flags: number;
  bitmapIndex: number;
}

export interface Superblock {
  format: MetadataFormat;
  magic: number;
  laSizeSect: number;
  current: bigint;
  /** v08: UI_BITMAP. v09: see peers[]. */
  bitmap: bigint;
  history: bigint[];
  deviceUuid: bigint;
  flags: number;
  mdSizeSect: number;
  /** Signed sector offsets from the superblock. */
  alOffset: number;
  alNrExtents: number;
  bmOffset: number;
  bmBytesPerBit: number;
  laPeerMaxBioSize: number;
  alStripes: number;
  alStripeSize4k: number;
  /** Bitmap slots (1 for v08). */
  maxPeers: number;
  /** v09: our node id, -1 unset. */
  nodeId: number;
  /** v09: indexed by peer node id. */
  peers: PeerSlot[];
}

type LayoutField = 'mdSizeSect' | 'alOffset' | 'alNrExtents' | 'bmOffset' | 'bmBytesPerBit' | 'laPeerMaxBioSize' | 'alStripes' | 'alStripeSize4k' | 'maxPeers' | 'nodeId';
type Word = 'u32' | 'i32';
const LAYOUT_COMMON: Array<[LayoutField, number, Word]> = [
  ['mdSizeSect', 0x40, 'u32'],
  ['alOffset', 0x44, 'i32'],
  ['alNrExtents', 0x48, 'u32'],
  ['bmOffset', 0x4c, 'i32'],
  ['bmBytesPerBit', 0x50, 'u32'],
  ['laPeerMaxBioSize', 0x54, 'u32'],
];
/** The fields that say where the meta-data's areas are and how big: the one list decoding and encodeLayout use. */
const LAYOUT: Record<MetadataFormat, Array<[LayoutField, number, Word]>> = {
  v08: [...LAYOUT_COMMON, ['alStripes', 0x58, 'u32'], ['alStripeSize4k', 0x5c, 'u32']],
  v09: [...LAYOUT_COMMON, ['maxPeers', 0x58, 'u32'], ['nodeId', 0x5c, 'i32'], ['alStripes', 0x60, 'u32'], ['alStripeSize4k', 0x64, 'u32']],
};

export function bad(message: string, hint?: string): BisyncError {
  return new BisyncError(ErrorCode.BAD_METADATA, message, hint ? { hint } : undefined);
}

function u64(buf: Buffer, off: number, what: string): number {
  const v = buf.readBigUInt64BE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} is ${v}, beyond any supported device size`);
  return Number(v);
}

export function formatOfMagic(magic: number): MetadataFormat | undefined {
  if (magic === MAGIC.V08 || magic === MAGIC.V84_UNCLEAN) return 'v08';
  if (magic === MAGIC.V09) return 'v09';
  return undefined;
}

/** Decodes the fields; throws ERR_BAD_METADATA naming the first implausible one. */
export function decodeSuperblock(buf: Buffer, where: string, expected?: MetadataFormat): Superblock {
  if (buf.length < SUPERBLOCK_SIZE) throw bad(`superblock at ${where} is truncated: ${buf.length} of ${SUPERBLOCK_SIZE} bytes`);
  const magic = buf.readUInt32BE(MAGIC_OFFSET);
  const format = formatOfMagic(magic);
  if (!format) {
    throw bad(`no DRBD meta-data at ${where}: magic is 0x${magic.toString(16).padStart(8, '0')}, expected 0x${MAGIC.V08.toString(16)}, 0x${MAGIC.V84_UNCLEAN.toString(16)} or 0x${MAGIC.V09.toString(16)}`, 'check the device and the meta-data placement (--meta-device, --meta-index, --flex)');
  }
  if (expected && expected !== format) throw bad(`meta-data at ${where} is ${format} (magic 0x${magic.toString(16)}), not ${expected}`);
  const sb: Superblock = {
    format,
    magic,
    laSizeSect: u64(buf, 0, 'la_size_sect'),
    current: buf.readBigUInt64BE(0x08),
    bitmap: 0n,
    history: [],
    deviceUuid: 0n,
    flags: buf.readUInt32BE(0x38),
    mdSizeSect: 0,
    alOffset: 0,
    alNrExtents: 0,
    bmOffset: 0,
    bmBytesPerBit: 0,
    laPeerMaxBioSize: 0,
    alStripes: 0,
    alStripeSize4k: 0,
    maxPeers: 1,
    nodeId: -1,
    peers: [],
  };
  for (const [field, off, word] of LAYOUT[format]) sb[field] = word === 'i32' ? buf.readInt32BE(off) : buf.readUInt32BE(off);
  if (format === 'v08') {
    sb.bitmap = buf.readBigUInt64BE(0x10);
    sb.history = [buf.readBigUInt64BE(0x18), buf.readBigUInt64BE(0x20)];
    sb.deviceUuid = buf.readBigUInt64BE(0x28);
    // Meta-data from before AL striping existed stores 0/0 for the default 1 x 32 KiB.
    if (sb.alStripes === 0 && sb.alStripeSize4k === 0) [sb.alStripes, sb.alStripeSize4k] = [1, 8];
  } else {
    sb.deviceUuid = buf.readBigUInt64BE(0x30);
    for (let n = 0; n < PEERS_MAX; n++) {
      const o = PEERS_OFF + n * PEER_SIZE;
      sb.peers.push({ nodeId: n, bitmapUuid: buf.readBigUInt64BE(o), bitmapDagtag: buf.readBigUInt64BE(o + 8), flags: buf.readUInt32BE(o + 16), bitmapIndex: buf.readInt32BE(o + 20) });
    }
    for (let i = 0; i < HISTORY_V09; i++) sb.history.push(buf.readBigUInt64BE(HISTORY_OFF + 8 * i));
  }
  checkFields(sb, where);
  return sb;
}

function checkFields(sb: Superblock, where: string): void {
  const bpb = sb.bmBytesPerBit;
  if (sb.format === 'v08' ? bpb !== 4096 : bpb < 4096 || bpb > 1 << 20 || (bpb & (bpb - 1)) !== 0) {
    throw bad(`bm_bytes_per_bit at ${where} is ${bpb}, expected ${sb.format === 'v08' ? '4096' : 'a power of two from 4096 to 1048576'}`);
  }
  if (sb.alStripes < 1 || sb.alStripes > 1024) throw bad(`al_stripes at ${where} is ${sb.alStripes}, expected 1 to 1024`);
  const alBytes = sb.alStripes * sb.alStripeSize4k * 4096;
  if (sb.alStripeSize4k < 1 || alBytes < 32768 || alBytes > 16 * 2 ** 30) throw bad(`activity log at ${where} is ${sb.alStripes} x ${sb.alStripeSize4k} x 4 KiB, expected 32 KiB to 16 GiB`);
  if (sb.format === 'v09') {
    if (sb.maxPeers < 1 || sb.maxPeers > PEERS_MAX) throw bad(`bm_max_peers at ${where} is ${sb.maxPeers}, expected 1 to ${PEERS_MAX}`);
    if (sb.nodeId < -1 || sb.nodeId >= PEERS_MAX) throw bad(`node_id at ${where} is ${sb.nodeId}, expected -1 to ${PEERS_MAX - 1}`);
    const used = new Map<number, number>();
    for (const p of sb.peers) {
      if (p.bitmapIndex === -1) continue;
      if (p.bitmapIndex < -1 || p.bitmapIndex >= sb.maxPeers) throw bad(`peer[${p.nodeId}].bitmap_index at ${where} is ${p.bitmapIndex}, expected -1 to ${sb.maxPeers - 1}`);
      if (p.nodeId === sb.nodeId) throw bad(`peer[${p.nodeId}].bitmap_index at ${where} is ${p.bitmapIndex}, but ${p.nodeId} is our own node id`);
      const other = used.get(p.bitmapIndex);
      if (other !== undefined) throw bad(`peer[${p.nodeId}].bitmap_index at ${where} is ${p.bitmapIndex}, already used by peer[${other}]`);
      used.set(p.bitmapIndex, p.nodeId);
    }
  }
}

/** Where things are, in absolute bytes on the meta-data device. */
export interface Layout {
  mdOffset: number;
  alStart: number;
  alBytes: number;
  bmStart: number;
  /** Bytes of the on-disk bitmap area (all slots). */
  bmAreaBytes: number;
  /** Bitmap bits in use: ceil(la_size / bytes per bit). */
  nBits: number;
  /** 32-bit words per slot in use: ALIGN(nBits, 64) / 32. */
  wordsPerSlot: number;
  /** drbdmeta's bm_bytes: ALIGN(ALIGN(nBits,64)/8 * maxPeers, 4096). */
  bmBytes: number;
  dataSize: number;
}

export type Index = number | 'flex' | 'internal';

/** Byte offset of the superblock for a placement (drbdmeta's v07_style_md_get_byte_offset). */
export function superblockOffset(index: Index, mdDeviceSize: number): number {
  if (index === 'internal') return Math.floor((mdDeviceSize - 4096) / 4096) * 4096;
  if (index === 'flex') return 0;
  return index * MD_128MB_SECT * 512;
}

/** Checks offsets and sizes as drbdmeta's is_valid_md() and the kernel do. */
export function layoutOf(sb: Superblock, index: Index, mdOffset: number, mdDeviceSize: number, backingSize: number, where: string): Layout {
  const alSizeSect = sb.alStripes * sb.alStripeSize4k * 8;
  if (index === 'internal') {
    if (sb.alOffset !== -alSizeSect) throw bad(`al_offset at ${where} is ${sb.alOffset} sectors, expected ${-alSizeSect} for internal meta-data`);
    if (sb.bmOffset !== -sb.mdSizeSect + 8) throw bad(`bm_offset at ${where} is ${sb.bmOffset} sectors, expected ${-sb.mdSizeSect + 8} (md_size_sect ${sb.mdSizeSect})`);
  } else {
    if (sb.alOffset !== 8) throw bad(`al_offset at ${where} is ${sb.alOffset} sectors, expected 8 for external meta-data`);
    if (sb.bmOffset !== 8 + alSizeSect) throw bad(`bm_offset at ${where} is ${sb.bmOffset} sectors, expected ${8 + alSizeSect}`);
    if (typeof index === 'number' && sb.mdSizeSect !== MD_128MB_SECT) throw bad(`md_size_sect at ${where} is ${sb.mdSizeSect}, expected ${MD_128MB_SECT} for indexed meta-data`);
  }
  const alStart = mdOffset + sb.alOffset * 512;
  const bmStart = mdOffset + sb.bmOffset * 512;
  const areaStart = Math.min(mdOffset, alStart, bmStart);
  const areaEnd = areaStart + sb.mdSizeSect * 512;
  if (sb.mdSizeSect < 8 + alSizeSect + 8 || areaStart < 0 || areaEnd > mdDeviceSize || mdOffset + SUPERBLOCK_SIZE > mdDeviceSize) {
    throw bad(`md_size_sect at ${where} is ${sb.mdSizeSect}: the meta-data area [${areaStart}, ${areaEnd}) does not fit the ${mdDeviceSize}-byte device`, 'the device may be truncated, or this is not its meta-data');
  }
  const bmAreaBytes = index === 'internal' ? (sb.alOffset - sb.bmOffset) * 512 : (sb.mdSizeSect - sb.bmOffset) * 512;
  const maxUsable = index === 'internal' ? bmStart : backingSize;
  const dataSize = sb.laSizeSect * 512;
  if (dataSize > maxUsable) throw bad(`la_size_sect at ${where} is ${sb.laSizeSect} (${dataSize} bytes), more than the ${maxUsable} usable bytes of the backing device`);
  const nBits = Math.ceil(dataSize / sb.bmBytesPerBit);
  const bits64 = Math.ceil(nBits / 64) * 64;
  const bmBytes = Math.ceil(((bits64 / 8) * sb.maxPeers) / 4096) * 4096;
  if (bmBytes > bmAreaBytes) {
    throw bad(`bitmap at ${where} needs ${bmBytes} bytes for la_size_sect ${sb.laSizeSect} x ${sb.maxPeers} slot(s), but the bitmap area is only ${bmAreaBytes} bytes`);
  }
  return { mdOffset, alStart, alBytes: alSizeSect * 512, bmStart, bmAreaBytes, nBits, wordsPerSlot: bits64 / 32, bmBytes, dataSize };
}

/** Writes the fields back into a copy of the original superblock bytes. */
export function encodeSuperblock(sb: Superblock, original: Buffer): Buffer {
  const buf = Buffer.from(original.subarray(0, SUPERBLOCK_SIZE));
  buf.writeBigUInt64BE(BigInt(sb.laSizeSect), 0);
  buf.writeBigUInt64BE(sb.current, 0x08);
  buf.writeUInt32BE(sb.flags >>> 0, 0x38);
  buf.writeUInt32BE(sb.magic >>> 0, MAGIC_OFFSET);
  if (sb.format === 'v08') {
    buf.writeBigUInt64BE(sb.bitmap, 0x10);
    buf.writeBigUInt64BE(sb.history[0] ?? 0n, 0x18);
    buf.writeBigUInt64BE(sb.history[1] ?? 0n, 0x20);
    buf.writeBigUInt64BE(sb.deviceUuid, 0x28);
  } else {
    buf.writeBigUInt64BE(sb.deviceUuid, 0x30);
    for (const p of sb.peers) {
      const o = PEERS_OFF + p.nodeId * PEER_SIZE;
      buf.writeBigUInt64BE(p.bitmapUuid, o);
      buf.writeBigUInt64BE(p.bitmapDagtag, o + 8);
      buf.writeUInt32BE(p.flags >>> 0, o + 16);
      buf.writeInt32BE(p.bitmapIndex, o + 20);
    }
    for (let i = 0; i < HISTORY_V09; i++) buf.writeBigUInt64BE(sb.history[i] ?? 0n, HISTORY_OFF + 8 * i);
  }
  return buf;
}

/**
 * Writes the layout fields into buf, in place. encodeSuperblock leaves them to the
 * original bytes (a rewrite never moves the areas): only new meta-data sets them.
 */
export function encodeLayout(sb: Superblock, buf: Buffer): Buffer {
  for (const [field, off, word] of LAYOUT[sb.format]) {
    if (word === 'i32') buf.writeInt32BE(sb[field], off);
    else buf.writeUInt32BE(sb[field], off);
  }
  return buf;
}

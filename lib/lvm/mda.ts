// Metadata areas: the 512-byte mda_header with its raw_locn slots, and the ring
// buffer of VG texts behind it. Slot 0 is the committed text; older copies stay
// in the ring, packed at 512-byte boundaries, until the ring wraps over them.
import { lvmCrc } from './crc';
import { badLvm, hex, raw } from './errors';
import { SECTOR } from './label';

export type ReadFn = (offset: number, length: number) => Promise<Buffer>;

const MDA_MAGIC = Buffer.from(' LVM2 x[5A%r0N*>', 'latin1');
const RAW_LOCN_IGNORED = 1;

export interface RawLocn {
  /** Offset relative to the mda start, size including the NUL. */
  offset: number;
  size: number;
  checksum: number;
  flags: number;
}

export interface MdaHeader {
  index: number;
  start: number;
  size: number;
  committed: RawLocn | null;
  precommitted: RawLocn | null;
  ignored: boolean;
}

/** Reads exactly `length` bytes or refuses (a device shorter than its label says). */
export async function readExact(read: ReadFn, offset: number, length: number, what: string): Promise<Buffer> {
  const buf = await read(offset, length);
  if (buf.length < length) throw badLvm(what, offset, buf.length, `bytes could be read of ${length}: the device ends early`);
  return buf;
}

export function parseMdaHeader(h: Buffer, index: number, start: number, size: number): MdaHeader {
  const field = (f: string): string => `mda${index}_header.${f}`;
  const stored = h.readUInt32LE(0);
  const computed = lvmCrc(h, 4, SECTOR);
  if (stored !== computed) throw badLvm(field('checksum_xl'), start, hex(stored), `does not match the CRC of the header (0x${computed.toString(16)})`);
  if (!h.subarray(4, 20).equals(MDA_MAGIC)) throw badLvm(field('magic'), start + 4, h.toString('latin1', 4, 20), 'is not the LVM2 metadata area magic');
  const version = h.readUInt32LE(20);
  if (version !== 1) throw badLvm(field('version'), start + 20, version, 'is not 1');
  const hStart = Number(h.readBigUInt64LE(24));
  if (hStart !== start) throw badLvm(field('start'), start + 24, hStart, `differs from the pv_header's metadata area offset (${start})`);
  const hSize = Number(h.readBigUInt64LE(32));
  if (hSize !== size) throw badLvm(field('size'), start + 32, hSize, `differs from the pv_header's metadata area size (${size})`);
  const slot = (i: number): RawLocn | null => {
    const p = 40 + i * 24;
    const offset = h.readBigUInt64LE(p);
    const len = h.readBigUInt64LE(p + 8);
    const checksum = h.readUInt32LE(p + 16);
    const flags = h.readUInt32LE(p + 20);
    if (offset === 0n) return flags & RAW_LOCN_IGNORED ? { offset: 0, size: 0, checksum, flags } : null;
    if (offset >= BigInt(size) || offset < BigInt(SECTOR)) throw badLvm(field(`raw_locns[${i}].offset`), start + p, raw(offset.toString()), `lies outside the text area of the metadata area [512, ${size})`);
    if (len === 0n || len > BigInt(size - SECTOR)) throw badLvm(field(`raw_locns[${i}].size`), start + p + 8, raw(len.toString()), `is not a text size that fits the metadata area (1..${size - SECTOR})`);
    return { offset: Number(offset), size: Number(len), checksum, flags };
  };
  const committed = slot(0);
  const ignored = committed !== null && (committed.flags & RAW_LOCN_IGNORED) !== 0;
  // Slot 1 only means something when slot 0 is in use (the list ends at offset 0).
  const precommitted = committed && !ignored ? slot(1) : null;
  return { index, start, size, committed: ignored ? null : committed, precommitted, ignored };
}

/** The byte ranges (device offsets) holding `len` bytes from mda-relative `offset`, wrapping to 512. */
export function ringPieces(mda: { start: number; size: number }, offset: number, len: number): Array<[number, number]> {
  const first = Math.min(len, mda.size - offset);
  const pieces: Array<[number, number]> = [[mda.start + offset, first]];
  if (first < len) pieces.push([mda.start + SECTOR, len - first]);
  return pieces;
}

export async function readRing(read: ReadFn, mda: { start: number; size: number; index: number }, offset: number, len: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const [off, n] of ringPieces(mda, offset, len)) parts.push(await readExact(read, off, n, `mda${mda.index} text`));
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** The committed text of an mda, CRC checked, without its trailing NUL. */
export async function readCommittedText(read: ReadFn, mda: MdaHeader): Promise<Buffer> {
  const rl = mda.committed!;
  const buf = await readRing(read, mda, rl.offset, rl.size);
  const crc = lvmCrc(buf);
  if (crc !== rl.checksum) {
    throw badLvm(`mda${mda.index}_header.raw_locns[0].checksum`, mda.start + 56, hex(rl.checksum), `does not match the CRC of the committed text (0x${crc.toString(16)}, ${rl.size} bytes at mda offset ${rl.offset})`);
  }
  if (buf[buf.length - 1] !== 0) throw badLvm(`mda${mda.index} text`, mda.start + rl.offset, rl.size, 'bytes of committed text do not end with a NUL');
  return buf.subarray(0, buf.length - 1);
}

// Older VG texts still in a metadata area's ring. LVM writes each new copy at
// the next 512-byte boundary after the previous one, so every copy that has not
// been overwritten starts at a 512-aligned mda offset with `<vgname> {`. Old
// copies carry no stored CRC; the CRC of their bytes plus the NUL is what
// raw_locn held while each was the committed copy, so (seqno, checksum) names
// a version the same way on every node.
import { lvmCrc } from './crc';
import { SECTOR } from './label';
import { type MdaHeader, type ReadFn, readRing } from './mda';
import { parseConfig } from './text';
import { parseFooter } from './vg';
import type { MetadataCopy } from './types';

/** Scan the ring this many bytes per read. */
const CHUNK = 4 << 20;
const ZERO_SECTOR = Buffer.alloc(SECTOR);

export interface RingCopy extends MetadataCopy {
  /** The text without its NUL. */
  text: Buffer;
}

export interface ScanOptions {
  /** Stop after this many intact copies. */
  limit?: number;
  /** Stop at the first copy for which this holds (it is the last one returned). */
  until?: (copy: RingCopy) => boolean;
}

/**
 * Intact older copies in the ring, newest first: walks backwards from the
 * committed copy (each older copy ends just before the next one begins) and
 * stops at two zero sectors in a row (never written; copies are padded by less
 * than one sector), after one full turn, or as the options say. A copy the ring
 * has partly overwritten (no NUL before the next copy, or another copy's footer
 * inside) is skipped.
 */
export async function scanRing(read: ReadFn, mda: MdaHeader, vgName: string, opts: ScanOptions = {}): Promise<RingCopy[]> {
  const from = mda.committed!;
  const needle = Buffer.from(`${vgName} {\n`, 'latin1');
  const ringEnd = Math.floor(mda.size / SECTOR) * SECTOR;
  const turn = ringEnd - SECTOR;
  const out: RingCopy[] = [];
  let end = Math.floor(from.offset / SECTOR) * SECTOR;
  let newer = from.offset;
  let scanned = 0;
  let zeros = 0;
  while (scanned < turn) {
    if (end <= SECTOR) end = ringEnd;
    const lo = Math.max(SECTOR, end - CHUNK, end - (turn - scanned));
    const buf = await read(mda.start + lo, end - lo);
    if (buf.length < end - lo) break;
    for (let b = end - lo - SECTOR; b >= 0; b -= SECTOR) {
      if (buf.compare(ZERO_SECTOR, 0, SECTOR, b, b + SECTOR) === 0) {
        if (++zeros >= 2) return out;
        continue;
      }
      zeros = 0;
      if (buf[b] !== needle[0] || buf.compare(needle, 0, needle.length, b, b + needle.length) !== 0) continue;
      const at = lo + b;
      // A copy ends before the next newer one begins (in ring order, wrapping to 512).
      const room = newer > at ? newer - at : ringEnd - at + (newer - SECTOR);
      const len = Math.min(room, mda.size - SECTOR);
      // Most copies lie wholly in the chunk just read; only one reaching past it is read again.
      const text = at + len <= end ? buf.subarray(b, b + len) : await readRing(read, mda, at, len);
      newer = at;
      const nul = text.indexOf(0);
      const copy = nul < 0 ? null : examine(text.subarray(0, nul), mda, at);
      if (!copy) continue;
      out.push(copy);
      if (out.length === opts.limit || opts.until?.(copy)) return out;
    }
    scanned += end - lo;
    end = lo;
  }
  return out;
}

/** A copy's seqno, checksum and footer, or null when the bytes are not one whole copy. */
function examine(text: Buffer, mda: MdaHeader, offset: number): RingCopy | null {
  const s = text.toString('utf8');
  const contents = s.indexOf('\ncontents = ');
  if (contents < 0 || s.lastIndexOf('\ncontents = ') !== contents) return null;
  const m = /\nseqno = (\d{1,15})\n/.exec(s);
  if (!m || m.index > contents) return null;
  let footer = { description: null as string | null, creationHost: null as string | null, creationTime: null as number | null };
  try {
    footer = parseFooter(parseConfig(s.slice(contents)));
  } catch {
    // A footer we cannot read still leaves seqno and checksum usable.
  }
  return {
    seqno: Number(m[1]),
    checksum: lvmCrc(Buffer.from([0]), 0, 1, lvmCrc(text)),
    mda: mda.index,
    offset,
    size: text.length + 1,
    ...footer,
    text,
  };
}

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

/** Offsets (mda-relative, ascending) where a copy of `vgName` may start. */
async function candidates(read: ReadFn, mda: MdaHeader, vgName: string): Promise<number[]> {
  const needle = Buffer.from(`${vgName} {\n`, 'latin1');
  const out: number[] = [];
  for (let pos = SECTOR; pos < mda.size; pos += CHUNK) {
    const len = Math.min(CHUNK, mda.size - pos);
    const buf = await read(mda.start + pos, len);
    // Skip quickly over the zeros of a ring that has not been written yet.
    let i = buf.indexOf(needle[0]);
    while (i >= 0) {
      const aligned = Math.ceil(i / SECTOR) * SECTOR;
      if (aligned + needle.length > buf.length) break;
      if (buf[aligned] === needle[0] && buf.compare(needle, 0, needle.length, aligned, aligned + needle.length) === 0) out.push(pos + aligned);
      i = buf.indexOf(needle[0], aligned + 1);
    }
  }
  return out;
}

export interface RingCopy extends MetadataCopy {
  /** The text without its NUL. */
  text: Buffer;
}

/**
 * Every intact copy in the ring: text up to its NUL, seqno read from the text,
 * checksum computed. Copies the ring has partly overwritten (no NUL before the
 * next copy, or another copy's footer inside) are skipped. Unsorted.
 */
export async function scanRing(read: ReadFn, mda: MdaHeader, vgName: string): Promise<RingCopy[]> {
  const offs = await candidates(read, mda, vgName);
  const maxCopy = mda.size - SECTOR;
  const out: RingCopy[] = [];
  for (let k = 0; k < offs.length; k++) {
    const o = offs[k];
    // A copy ends before the next one begins (in ring order, wrapping to 512).
    const room = k + 1 < offs.length ? offs[k + 1] - o : mda.size - o + (offs.length > 1 ? offs[0] - SECTOR : o - SECTOR);
    const buf = await readRing(read, mda, o, Math.min(room, maxCopy));
    const nul = buf.indexOf(0);
    if (nul < 0) continue;
    const copy = examine(buf.subarray(0, nul), mda, o);
    if (copy) out.push(copy);
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

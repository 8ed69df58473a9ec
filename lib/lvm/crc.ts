// The two CRCs on-disk LVM and sanlock records carry. Both are reflected CRC-32
// without a final XOR, over different polynomials and seeds. LVM's is table-driven
// here because a VG text of a thousand LVs is half a megabyte; sanlock's is the
// addon's crc32c, the one DRBD's activity log uses.
import { nb } from '../drbd/native';

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const IEEE = table(0xedb88320);

function crc(t: Uint32Array, seed: number, buf: Uint8Array, start: number, end: number): number {
  let c = seed >>> 0;
  for (let i = start; i < end; i++) c = t[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** LVM's INITIAL_CRC: the seed of every label, mda header and text checksum. */
export const LVM_INITIAL_CRC = 0xf597a6cf;

/** LVM's calc_crc over buf[start, end), optionally continuing from `seed` (a previous result). */
export function lvmCrc(buf: Uint8Array, start = 0, end = buf.length, seed = LVM_INITIAL_CRC): number {
  return crc(IEEE, seed, buf, start, end);
}

/**
 * sanlock's leader_checksum: CRC-32C seeded with ~1, no final XOR. The addon's crc32c is
 * that function (reflected 0x82F63B78, the seed as given, no XOR in or out; DRBD seeds it 0).
 */
export function sanlockCrc(buf: Uint8Array, start: number, end: number): number {
  return nb.crc32c(Buffer.from(buf.buffer, buf.byteOffset + start, end - start), 0xfffffffe);
}

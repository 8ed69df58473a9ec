// The on-disk bitmap: one slot (v08) or max_peers slots interleaved as 32-bit
// little-endian words (v09: slot s's word k at byte 4*(k*maxPeers + s)).
// Reading is a native scan in chunks; writing is read-modify-write of whole
// 4 KiB-aligned chunks, so a crash leaves every page either old or new.
import type { BlockDevice } from '../device/block-device';
import { Extent, coalesce } from '../device/extent';
import { pipelined } from '../device/pipeline';
import { nb } from './native';

export interface SlotGeometry {
  /** Absolute byte offset of the bitmap area on the meta-data device. */
  bmStart: number;
  maxPeers: number;
  nBits: number;
  wordsPerSlot: number;
  bytesPerBit: number;
  dataSize: number;
}

/** Slot words per native call: 2^17 words = 4 Mi bits (16 GiB of data at 4 KiB/bit). */
const WORDS_PER_CALL = 1 << 17;

export interface ScanResult {
  bitsSet: number;
  extents: Extent[];
}

/** Byte extents of the set bits of one slot, coalesced and ascending, clipped to dataSize. */
export async function* scanSlot(dev: BlockDevice, g: SlotGeometry, slot: number, stats?: { bitsSet: number }): AsyncGenerator<Extent> {
  for await (const chunk of scanSlotChunks(dev, g, slot, stats)) yield* chunk;
}

/**
 * scanSlot a native call's worth at a time: one await per 4 Mi bits instead of one per run,
 * which a scattered split brain's tens of thousands of runs made the larger cost of reading a
 * bitmap. A run split across two calls is joined before it is handed out.
 */
export async function* scanSlotChunks(dev: BlockDevice, g: SlotGeometry, slot: number, stats?: { bitsSet: number }): AsyncGenerator<Extent[]> {
  const calls = function* (): Generator<number> {
    for (let w = 0; w < g.wordsPerSlot; w += WORDS_PER_CALL) yield w;
  };
  const run = (first: number): Promise<{ runs: Float64Array; bitsSet: number }> =>
    dev.track(nb.bitmapScan(dev.handle('bitmap scan'), dev.path, g.bmStart, g.maxPeers, slot, first, Math.min(WORDS_PER_CALL, g.wordsPerSlot - first), g.nBits));
  const B = g.bytesPerBit;
  let cur: [number, number] | undefined; // the last run so far: the next call's first may continue it
  for await (const [, r] of pipelined(calls(), run, { concurrency: 2 })) {
    if (stats) stats.bitsSet += r.bitsSet;
    const out: Extent[] = [];
    const a = r.runs;
    for (let i = 0; i < a.length; i += 2) {
      const off = a[i] * B;
      const len = Math.min(a[i + 1] * B, g.dataSize - off);
      if (len <= 0) continue;
      if (cur && off <= cur[0] + cur[1]) cur[1] = Math.max(cur[0] + cur[1], off + len) - cur[0];
      else {
        if (cur) out.push(cur);
        cur = [off, len];
      }
    }
    if (out.length) yield out;
  }
  if (cur) yield [cur];
}

/** Bit ranges [first, end) of the blocks wholly inside the extents (rounded inwards), clipped to nBits. */
export function innerBitRanges(extents: Iterable<Extent>, g: SlotGeometry): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [off, len] of coalesce(extents)) {
    const first = Math.ceil(off / g.bytesPerBit);
    // The last block may end at the data size rather than a bit boundary.
    const endBit = off + len >= g.dataSize ? g.nBits : Math.floor((off + len) / g.bytesPerBit);
    const last = Math.min(endBit, g.nBits);
    if (first < last) out.push([first, last]);
  }
  return out;
}

/** Bit ranges [first, end) covering the extents (rounded outwards), clipped to nBits. */
export function* bitRanges(extents: Iterable<Extent>, g: SlotGeometry): Generator<[number, number]> {
  for (const [off, len] of coalesce(extents)) {
    const first = Math.floor(off / g.bytesPerBit);
    const last = Math.min(Math.ceil((off + len) / g.bytesPerBit), g.nBits);
    if (first < last) yield [first, last];
  }
}

export interface BitEdit {
  /** Slots whose words are zeroed first. */
  clearSlots: number[];
  /** Bit ranges [first, end) cleared next, in `setSlots`. */
  clear?: Array<[number, number]>;
  /** Slots that get the bits of `set` (after clearing). */
  setSlots: number[];
  /** Bit ranges [first, end), ascending. */
  set: Array<[number, number]>;
}

const CHUNK_WORDS = 1 << 16; // slot words per chunk: 256 KiB x maxPeers of area

/**
 * Applies clear-then-set per chunk of the area with one read and one write per
 * chunk, so no page is ever written with fewer set bits than `set` asks for.
 */
export async function editBitmap(dev: BlockDevice, g: SlotGeometry, edit: BitEdit, afterChunk?: () => void): Promise<void> {
  const group = 4 * g.maxPeers;
  const touched = new Set<number>();
  if (edit.clearSlots.length) for (let c = 0; c * CHUNK_WORDS < g.wordsPerSlot; c++) touched.add(c);
  if (edit.setSlots.length) {
    for (const [a, b] of [...edit.set, ...(edit.clear ?? [])]) for (let c = Math.floor(a / 32 / CHUNK_WORDS); c <= Math.floor((b - 1) / 32 / CHUNK_WORDS); c++) touched.add(c);
  }
  const chunks = [...touched].sort((x, y) => x - y);
  let r = 0; // index into edit.set, advanced monotonically
  let q = 0; // index into edit.clear
  const clear = edit.clear ?? [];
  for (const c of chunks) {
    const w0 = c * CHUNK_WORDS;
    const words = Math.min(CHUNK_WORDS, g.wordsPerSlot - w0);
    const pos = g.bmStart + w0 * group;
    const len = Math.ceil((words * group) / 4096) * 4096;
    const buf = await dev.read(pos, len);
    if (buf.length < words * group) throw new RangeError(`bitmap chunk at ${pos} is past the end of '${dev.path}'`);
    // One slot (v08, or a v09 with one peer) is the whole chunk: a fill, not a call per word.
    if (g.maxPeers === 1 && edit.clearSlots.length) buf.fill(0, 0, words * 4);
    else for (const s of edit.clearSlots) for (let k = 0; k < words; k++) buf.writeUInt32LE(0, (k * g.maxPeers + s) * 4);
    const bitLo = w0 * 32;
    const bitHi = (w0 + words) * 32;
    while (q < clear.length && clear[q][1] <= bitLo) q++;
    for (let i = q; i < clear.length && clear[i][0] < bitHi; i++) {
      const a = Math.max(clear[i][0], bitLo) - bitLo;
      const b = Math.min(clear[i][1], bitHi) - bitLo;
      for (const s of edit.setSlots) changeBits(buf, g.maxPeers, s, a, b, false);
    }
    while (r < edit.set.length && edit.set[r][1] <= bitLo) r++;
    for (let i = r; i < edit.set.length && edit.set[i][0] < bitHi; i++) {
      const a = Math.max(edit.set[i][0], bitLo) - bitLo;
      const b = Math.min(edit.set[i][1], bitHi) - bitLo;
      for (const s of edit.setSlots) changeBits(buf, g.maxPeers, s, a, b, true);
    }
    await dev.write(buf, pos);
    afterChunk?.();
  }
}

/** Sets or clears bits [a, b) (chunk-relative) of slot s in an interleaved chunk buffer. */
function changeBits(buf: Buffer, maxPeers: number, s: number, a: number, b: number, on: boolean): void {
  let bit = a;
  while (bit < b) {
    const k = bit >>> 5;
    const lo = bit & 31;
    const n = Math.min(32 - lo, b - bit);
    const mask = n === 32 ? 0xffffffff : ((2 ** n - 1) * 2 ** lo) >>> 0;
    const off = (k * maxPeers + s) * 4;
    const w = buf.readUInt32LE(off);
    buf.writeUInt32LE((on ? w | mask : w & ~mask) >>> 0, off);
    bit += n;
  }
}

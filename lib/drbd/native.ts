// Typed view of the addon functions this module adds (native/bitmap.cc).
import { native } from '../native/binding';

export interface AlReplayResult {
  /** >0 update transactions replayed, 0 nothing to do, -61 no valid block, -22 only some INITIALIZED blocks valid. */
  status: number;
  blocks: number;
  valid: number;
  updates: number;
  firstCorruptBlock: number;
  badTrBlock: number;
  badTrNumber: number;
  oldestTr: number;
  newestTr: number;
  /** AL extent numbers (4 MiB each), sorted and unique. */
  hotExtents: number[];
}

export interface AlTransaction {
  trNumber: number;
  type?: number;
  contextSize?: number;
  contextStart?: number;
  updates?: Array<[slot: number, extent: number]>;
  context?: number[];
  magic?: number;
}

export interface MetadataNativeFns {
  bitmapScan(fd: number, path: string, areaOffset: number, maxPeers: number, slot: number, firstWord: number, nWords: number, nBits: number): Promise<{ runs: Float64Array; bitsSet: number }>;
  alReplay(area: Buffer, stripes: number, stripeSize4k: number): AlReplayResult;
  alInitialize(area: Buffer): void;
  alEncode(t: AlTransaction): Buffer;
  crc32c(data: Buffer, seed?: number): number;
}

export const nb = native as unknown as MetadataNativeFns;

// The activity log: a ring of 4 KiB transactions (crc32c-checked) naming the
// 4 MiB extents a primary may have written without the bitmap knowing. Replay
// follows drbdmeta's replay_al_84; checks that drbdmeta only warns about are
// errors here, because a wrong AL means a wrong change set.
import type { BlockDevice } from '../device/block-device';
import type { Extent } from '../device/extent';
import { AlReplayResult, nb } from './native';
import { bad } from './superblock';

export const AL_EXTENT_SIZE = 4 << 20;

export interface AlGeometry {
  alStart: number;
  alBytes: number;
  alStripes: number;
  alStripeSize4k: number;
  dataSize: number;
}

export async function readAl(dev: BlockDevice, g: AlGeometry): Promise<Buffer> {
  const buf = await dev.read(g.alStart, g.alBytes);
  if (buf.length < g.alBytes) throw bad(`activity log [${g.alStart}, ${g.alStart + g.alBytes}) is past the end of '${dev.path}'`);
  return buf;
}

/** Replays and vets the AL; returns the hot AL extent numbers. */
export function replayAl(area: Buffer, g: AlGeometry, where: string): AlReplayResult {
  const r = nb.alReplay(area, g.alStripes, g.alStripeSize4k);
  if (r.status === -61) throw bad(`activity log at ${where}: none of its ${r.blocks} transaction blocks has a valid magic and crc32c`, 'the AL was never initialised or is overwritten; drbdmeta apply-al would fail too');
  if (r.status === -22) throw bad(`activity log at ${where}: only ${r.valid} of ${r.blocks} blocks are valid and none is an update transaction (first bad block ${r.firstCorruptBlock})`);
  // One torn block is what a crash during an AL write leaves; more is corruption.
  if (r.blocks - r.valid > 1) throw bad(`activity log at ${where}: ${r.blocks - r.valid} of ${r.blocks} transaction blocks fail the magic or crc32c check (first: block ${r.firstCorruptBlock})`);
  if (r.badTrBlock >= 0) throw bad(`activity log at ${where}: transaction number ${r.badTrNumber} in block ${r.badTrBlock} does not fit the ring sequence (oldest ${r.oldestTr}, newest ${r.newestTr})`);
  return r;
}

/** Hot AL extents as byte extents, ascending, clipped to the data size. */
export function alByteExtents(hot: readonly number[], dataSize: number): Extent[] {
  const out: Extent[] = [];
  for (const e of hot) {
    const off = e * AL_EXTENT_SIZE;
    if (off >= dataSize) continue;
    const len = Math.min(AL_EXTENT_SIZE, dataSize - off);
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === off) out[out.length - 1] = [last[0], last[1] + len];
    else out.push([off, len]);
  }
  return out;
}

/** What drbdmeta's initialize_al writes: every block a valid AL_TR_INITIALIZED transaction. */
export function initializedAl(bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  nb.alInitialize(buf);
  return buf;
}

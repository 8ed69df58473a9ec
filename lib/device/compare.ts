// Device-to-device bulk operations: diff and copy over extents.
import { native } from '../native/binding';
import { BisyncError, ErrorCode } from './errors';
import { BlockDevice, BulkOptions, checkBlockSize } from './block-device';
import { Extent, coalesce, toFlat, totalBytes } from './extent';
import { pipelined } from './pipeline';

/** The whole device as one extent list. */
export function wholeDevice(dev: BlockDevice): Extent[] {
  return dev.size > 0 ? [[0, dev.size]] : [];
}

/** Differing block-aligned extents between a and b, coalesced and ascending. Over the whole devices unless extents are given. */
export async function* diffDevices(a: BlockDevice, b: BlockDevice, blockSize: number, opts: BulkOptions & { extents?: Iterable<Extent> } = {}): AsyncGenerator<Extent> {
  checkBlockSize(blockSize);
  if (a.size !== b.size) {
    throw new BisyncError(ErrorCode.SIZE_MISMATCH, `'${a.path}' is ${a.size} bytes but '${b.path}' is ${b.size} bytes`);
  }
  const extents = opts.extents ?? wholeDevice(a);
  let done = 0;
  const results = pipelined(a.validBatches(extents, blockSize, opts), (batch) => {
    const flat = toFlat(batch);
    return a.track(b.track(native.compare(a.handle('diff'), a.path, b.handle('diff'), b.path, flat, blockSize)));
  }, opts);
  // Batches abut: coalesce across their borders too. Results are consumed in
  // microtasks, which never let the event loop run; step out every so often so
  // a batch with thousands of differing extents cannot stall timers and I/O.
  let open: [number, number] | undefined;
  let sinceBreak = 0;
  for await (const [batch, flat] of results) {
    done += totalBytes(batch);
    opts.onProgress?.(done);
    for (let i = 0; i < flat.length; i += 2) {
      const off = flat[i];
      const len = flat[i + 1];
      if (open && off === open[0] + open[1]) {
        open[1] += len;
        continue;
      }
      if (open) {
        yield open;
        if (++sinceBreak >= YIELD_EVERY) {
          sinceBreak = 0;
          await breathe();
        }
      }
      open = [off, len];
    }
    await breathe();
  }
  if (open) yield open;
}

/** Extents handed out between two turns of the event loop. */
const YIELD_EVERY = 512;

const breathe = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Copies the extents from src to dst (same offsets); returns bytes copied. */
export async function copyExtents(src: BlockDevice, dst: BlockDevice, extents: Iterable<Extent>, opts: BulkOptions & { blockSize?: number } = {}): Promise<number> {
  if (!dst.writable) throw new BisyncError(ErrorCode.READ_ONLY, `destination '${dst.path}' was opened read-only`);
  const unit = Math.max(src.logicalSectorSize, dst.logicalSectorSize, opts.blockSize ?? 512);
  let done = 0;
  const checked = function* (list: Iterable<Extent>): Generator<Extent> {
    for (const e of coalesce(list)) {
      dst.checkRange(e[0], e[1], 'copy extent');
      yield e;
    }
  };
  // A list in memory is checked whole before the first write, so a bad entry
  // near its end changes nothing; a stream is checked as it goes.
  if (Array.isArray(extents)) for (const _ of src.validBatches(checked(extents), unit, opts));
  for await (const [, n] of pipelined(src.validBatches(checked(extents), unit, opts), (batch) => src.track(dst.track(native.copy(src.handle('copy'), src.path, dst.handle('copy'), dst.path, toFlat(batch)))), opts)) {
    done += n;
    opts.onProgress?.(done);
  }
  return done;
}

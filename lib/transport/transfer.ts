// Copies extents from one Endpoint to another in pipelined batches: several
// batches read ahead while earlier ones are written, so a remote side never
// waits for a round trip per batch.
import { batches, coalesce } from '../device/extent';
import type { Extent } from '../device/extent';
import { pipelined } from '../device/pipeline';
import type { Endpoint } from './endpoint';

export interface TransferOptions {
  /** Bytes per batch (default 8 MiB). */
  batchBytes?: number;
  /** Batches in flight (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number) => void;
  /** Runs before a batch is written to dst (e.g. to archive what it overwrites). */
  beforeWrite?: (batch: Extent[]) => Promise<void>;
  /** Called for each batch once written, in ascending order. */
  onBatch?: (batch: Extent[], bytes: number) => void;
}

/** Reads the extents from src and writes them to dst; resolves to the bytes moved. */
export async function transferExtents(src: Endpoint, dst: Endpoint, extents: Iterable<Extent>, opts: TransferOptions = {}): Promise<number> {
  const size = opts.batchBytes ?? 8 << 20;
  if (!Number.isSafeInteger(size) || size < 4096) throw new RangeError(`batch size must be at least 4096 bytes, got ${size}`);
  let done = 0;
  const move = async (batch: Extent[]): Promise<number> => {
    const data = await src.read(batch);
    await opts.beforeWrite?.(batch);
    await dst.write(batch, data);
    return data.length;
  };
  for await (const [batch, n] of pipelined(batches(coalesce(extents), size), move, { concurrency: opts.concurrency ?? 4, signal: opts.signal })) {
    done += n;
    opts.onBatch?.(batch, n);
    opts.onProgress?.(done);
  }
  return done;
}

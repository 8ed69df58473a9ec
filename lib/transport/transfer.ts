// Copies extents from one Endpoint to another in pipelined batches: several
// batches read ahead while earlier ones are written, so a remote side never
// waits for a round trip per batch.
import { batches, coalesce, totalBytes } from '../device/extent';
import type { Extent } from '../device/extent';
import { pipelined } from '../device/pipeline';
import { deviceOf } from './bulk';
import type { Endpoint } from './endpoint';
import { RemoteEndpoint } from './remote-endpoint';

export interface TransferOptions {
  /** Bytes per batch (default 8 MiB; 32 MiB between a device and data streams, either way, without a rate limit or beforeWrite, see RemoteEndpoint.bulkBatchBytes). */
  batchBytes?: number;
  /** Batches in flight (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number) => void;
  /** Runs before a batch is written to dst (e.g. to archive what it overwrites). */
  beforeWrite?: (batch: Extent[]) => Promise<void>;
  /**
   * Between a local device and an agent's on data streams: the receiving side reads each batch
   * back from its device after writing it and compares it with what arrived (a difference
   * fails the transfer with ERR_VERIFY).
   */
  verify?: boolean;
  /** Called for each batch once written (and, when `verified`, checked), in ascending order. */
  onBatch?: (batch: Extent[], bytes: number, verified: boolean) => void;
}

/** Reads the extents from src and writes them to dst; resolves to the bytes moved. */
export async function transferExtents(src: Endpoint, dst: Endpoint, extents: Iterable<Extent>, opts: TransferOptions = {}): Promise<number> {
  const direct = directMove(src, dst, opts.verify ?? false);
  // Large batches only where no batch passes through a JavaScript buffer: not when each is read
  // for the archive first (beforeWrite), nor between endpoints without data streams.
  const size = opts.batchBytes ?? (direct && !opts.beforeWrite ? remoteOf(src, dst)?.bulkBatchBytes : undefined) ?? 8 << 20;
  if (!Number.isSafeInteger(size) || size < 4096) throw new RangeError(`batch size must be at least 4096 bytes, got ${size}`);
  let done = 0;
  const move = async (batch: Extent[]): Promise<[number, boolean]> => {
    if (direct) {
      await opts.beforeWrite?.(batch);
      return [totalBytes(batch), await direct(batch)];
    }
    const data = await src.read(batch);
    await opts.beforeWrite?.(batch);
    await dst.write(batch, data);
    return [data.length, false];
  };
  // Batches on data streams keep every stream busy: twice as many in flight as streams.
  const concurrency = opts.concurrency ?? Math.max(4, 2 * (remoteOf(src, dst)?.plannedStreams ?? 0));
  for await (const [batch, [n, verified]] of pipelined(batches(coalesce(extents), size), move, { concurrency, signal: opts.signal })) {
    done += n;
    opts.onBatch?.(batch, n, verified);
    opts.onProgress?.(done);
  }
  return done;
}

/**
 * Between a local device and an agent the batch moves device to data stream
 * to device, without passing through JavaScript buffers; null otherwise. The
 * move resolves to true when the batch was verified as it landed.
 */
function directMove(src: Endpoint, dst: Endpoint, verify: boolean): ((batch: Extent[]) => Promise<boolean>) | null {
  const from = deviceOf(src);
  if (from && dst instanceof RemoteEndpoint) return (batch) => dst.pushFrom(from, batch, verify);
  const to = deviceOf(dst);
  if (to && src instanceof RemoteEndpoint) return (batch) => src.pullInto(to, batch, verify);
  return null;
}

function remoteOf(src: Endpoint, dst: Endpoint): RemoteEndpoint | null {
  return src instanceof RemoteEndpoint ? src : dst instanceof RemoteEndpoint ? dst : null;
}

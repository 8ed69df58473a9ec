// Copies extents from one Endpoint to another in pipelined batches: several
// batches read ahead while earlier ones are written, so a remote side never
// waits for a round trip per batch.
import { batches, coalesce } from '../device/extent';
import type { Extent } from '../device/extent';
import { pipelined } from '../device/pipeline';
import { deviceOf } from './bulk';
import type { Endpoint } from './endpoint';
import { RemoteEndpoint } from './remote-endpoint';

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
  const direct = directMove(src, dst);
  const move = async (batch: Extent[]): Promise<number> => {
    if (direct) {
      await opts.beforeWrite?.(batch);
      return direct(batch);
    }
    const data = await src.read(batch);
    await opts.beforeWrite?.(batch);
    await dst.write(batch, data);
    return data.length;
  };
  // Batches on data streams keep every stream busy: twice as many in flight as streams.
  const concurrency = opts.concurrency ?? Math.max(4, 2 * streamsOf(src, dst));
  for await (const [batch, n] of pipelined(batches(coalesce(extents), size), move, { concurrency, signal: opts.signal })) {
    done += n;
    opts.onBatch?.(batch, n);
    opts.onProgress?.(done);
  }
  return done;
}

/**
 * Between a local device and an agent the batch moves device to data stream
 * to device, without passing through JavaScript buffers; null otherwise.
 */
function directMove(src: Endpoint, dst: Endpoint): ((batch: Extent[]) => Promise<number>) | null {
  const count = (batch: Extent[]): number => batch.reduce((n, e) => n + e[1], 0);
  const from = deviceOf(src);
  if (from && dst instanceof RemoteEndpoint) return async (batch) => (await dst.pushFrom(from, batch), count(batch));
  const to = deviceOf(dst);
  if (to && src instanceof RemoteEndpoint) return async (batch) => (await src.pullInto(to, batch), count(batch));
  return null;
}

function streamsOf(src: Endpoint, dst: Endpoint): number {
  const r = src instanceof RemoteEndpoint ? src : dst instanceof RemoteEndpoint ? dst : null;
  return r?.plannedStreams ?? 0;
}

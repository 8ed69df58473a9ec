// The bulk data path: block data moves on separate data streams, not on the
// control connection. Each data stream is its own TLS-PSK connection (so the
// pre-shared key authenticates it and a wrong key is refused in the
// handshake); once the handshake is done, both sides take the TCP socket away
// from Node's TLS and seal batches with AES-256-GCM in the addon, under keys
// exported from that stream's TLS session (RFC 5705). A native thread per batch
// moves it as records of at most 512 KiB: each read, sealed in place and handed
// to the kernel (or received, opened, written and read back) while it is still
// in the core's cache; JavaScript makes one call per batch, never touches the
// bytes, and counts the batch's records in the lane's sequence numbers.
//
// Keys: the exporter gives 64 bytes per stream, the first 32 for client ->
// agent and the last 32 for agent -> client; every 2^20 records the key moves
// to HKDF(key, "epoch N"). Nonces are the record sequence number, counted
// separately per direction by both sides, so no (key, nonce) pair repeats and
// a replayed, reordered or foreign record fails its tag. A data stream joins
// a session only by proving, in its first sealed record, the random token the
// agent gave that session over its control connection.
import { hkdfSync } from 'node:crypto';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode } from '../device/errors';
import { Extent, toFlat } from '../device/extent';
import { native } from '../native/binding';
import { TransferStats, connectionError } from './connection';
import type { TokenBucket } from './rate-limit';

/** The ALPN name a data stream's TLS handshake carries: the agent tells streams from control connections by it. */
export const BULK_ALPN = 'drbd-bisync-bulk/2'; // 2: a batch is several records (bulk.cc kRecordBytes)
const EXPORTER_LABEL = 'EXPORTER-drbd-bisync-bulk';
/** Records per key before it moves to the next epoch (far below AES-GCM's limits for 512 KiB records). */
export const RECORDS_PER_KEY = 2 ** 20;
/** Largest stream hello or answer. */
const MAX_MESSAGE = 4096;

/** CPU seconds the native threads of the data streams spent, by part of the work. */
export interface StreamCpu {
  read: number;
  crypto: number;
  socket: number;
  write: number;
  zstd: number;
  /** Reading back what was written and comparing it with what was received. */
  verify: number;
}
interface NativeResult {
  wire: number;
  cpu: StreamCpu;
  /** The receiver read the batch back from its device and found what it wrote. */
  verified?: boolean;
}

interface NativeBulk {
  adopt(fd: number): number;
  shutdown(fd: number): void;
  close(fd: number): void;
  /** `records`: how many sequence numbers the lane reserved for the batch; the call refuses a batch that makes another count. */
  sendExtents(sock: number, key: Buffer, seq: number, id: number, fd: number, path: string, extents: Float64Array, level: number, records: number): Promise<NativeResult>;
  recvExtents(sock: number, key: Buffer, seq: number, id: number, fd: number, path: string, extents: Float64Array, verify: boolean, records: number): Promise<NativeResult>;
  sendMessage(sock: number, key: Buffer, seq: number, id: number, message: Buffer): Promise<NativeResult>;
  /** Block data moves in records of at most this many bytes; a batch is as many records as that takes. */
  readonly recordBytes: number;
  recvMessage(sock: number, key: Buffer, seq: number, id: number, maxBytes: number): Promise<NativeResult & { message: Buffer }>;
}
const nb = (native as unknown as { bulk: NativeBulk }).bulk;

/** How many records the native side makes of a batch of `bytes` (see Records() in bulk.cc). */
function recordsOf(bytes: number): number {
  // An addon built before records existed would count one per batch and fall out of step with its peer.
  if (!(nb.recordBytes > 0)) throw new Error('the native addon is older than this JavaScript (no bulk.recordBytes): rebuild it with `npm run build:native`');
  return Math.max(1, Math.ceil(bytes / nb.recordBytes));
}

/** The device behind an endpoint that serves one directly (LocalEndpoint): what the bulk path reads and writes. */
export function deviceOf(ep: unknown): BlockDevice | undefined {
  const d = (ep as { device?: unknown } | null)?.device;
  return d instanceof BlockDevice ? d : undefined;
}

/** Streams a client opens unless told otherwise: one per core, at least 2 (one per direction), at most 8. */
export function defaultStreams(cores: number): number {
  return Math.max(2, Math.min(8, cores));
}

export function checkStreams(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 64) throw new RangeError(`streams must be an integer from 0 (no data streams) to 64, got ${String(n)}`);
  return n;
}

/**
 * Stops Node's TLS from reading a data stream the moment its handshake is
 * done, and resolves once what the handshake still had to send (the agent's
 * Finished) has left; then BulkStream.adopt may take the socket.
 */
export function quiesce(sock: tls.TLSSocket, raw: net.Socket): Promise<void> {
  (sock as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      // Destroyed meanwhile (a handshake deadline, the peer gone): its queue would never drain.
      if (sock.destroyed || raw.destroyed) return reject(new Error('the connection closed before its TLS handshake was handed over'));
      const pending = (raw as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? 0;
      if (pending === 0 && sock.writableLength === 0) resolve();
      else setTimeout(check, 1);
    };
    setImmediate(check);
  });
}

/** @internal One direction of a stream: its key, the next sequence number, and the queue that keeps records in order. */
export class Lane {
  private epoch = 0;
  private key: Buffer;
  private queue: Promise<unknown> = Promise.resolve();

  /** `seq` other than 0 only in tests, to start near a key boundary (next() derives that epoch's key). */
  constructor(private readonly base: Buffer, private seq = 0) {
    this.key = base;
  }

  /**
   * Runs op after every earlier op of this lane, with the key and first sequence number of its
   * `records` records. The records of one op never straddle two keys: when they would, both
   * sides skip to the first sequence number of the next key.
   */
  next<T>(op: (key: Buffer, seq: number) => Promise<T>, records = 1): Promise<T> {
    const run = this.queue.then(() => {
      if (Math.floor(this.seq / RECORDS_PER_KEY) !== Math.floor((this.seq + records - 1) / RECORDS_PER_KEY)) this.seq = Math.ceil(this.seq / RECORDS_PER_KEY) * RECORDS_PER_KEY;
      const seq = this.seq;
      this.seq += records;
      const epoch = Math.floor(seq / RECORDS_PER_KEY);
      if (epoch !== this.epoch) {
        this.epoch = epoch;
        this.key = Buffer.from(hkdfSync('sha256', this.base, Buffer.alloc(0), `drbd-bisync bulk epoch ${epoch}`, 32));
      }
      return op(this.key, seq);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** A data stream after its handshake: two lanes over one TCP socket owned by native code. */
export class BulkStream {
  wireSent = 0;
  wireReceived = 0;
  payloadSent = 0;
  payloadReceived = 0;
  readonly cpu: StreamCpu = noCpu();
  private readonly out: Lane;
  private readonly in: Lane;
  private broken: Error | null = null;
  private inFlight = 0;
  private closed = false;

  private constructor(private fd: number, sendKey: Buffer, recvKey: Buffer, readonly label: string) {
    this.out = new Lane(sendKey);
    this.in = new Lane(recvKey);
  }

  /**
   * Takes a data stream over from Node once its TLS handshake finished. Must
   * run in the 'secure'/'secureConnect' handler itself: nothing but sealed
   * records follows the handshake, and Node's TLS must not read them.
   */
  static adopt(sock: tls.TLSSocket, raw: net.Socket, isClient: boolean, label: string): BulkStream {
    if (sock.alpnProtocol !== BULK_ALPN) throw new Error(`data stream to ${label}: the TLS handshake did not agree on ${BULK_ALPN}`);
    const keys = sock.exportKeyingMaterial(64, EXPORTER_LABEL, Buffer.alloc(0));
    const c2s = keys.subarray(0, 32);
    const s2c = keys.subarray(32, 64);
    const handle = (raw as unknown as { _handle?: { fd?: number } })._handle;
    if (typeof handle?.fd !== 'number' || handle.fd < 0) throw new Error(`cannot take over the data stream to ${label}: no socket descriptor`);
    const fd = nb.adopt(handle.fd);
    sock.destroy(); // closes Node's descriptor; ours keeps the connection
    return isClient ? new BulkStream(fd, c2s, s2c, label) : new BulkStream(fd, s2c, c2s, label);
  }

  get usable(): boolean {
    return !this.broken && !this.closed;
  }

  /** Sends a small sealed message (the stream hello and its answer). */
  sendMessage(id: number, message: Buffer): Promise<void> {
    return this.run(this.out, async (key, seq) => {
      this.wireSent += this.count(await nb.sendMessage(this.fd, key, seq, id, message)).wire;
    });
  }

  recvMessage(id: number): Promise<Buffer> {
    return this.run(this.in, async (key, seq) => {
      const r = this.count(await nb.recvMessage(this.fd, key, seq, id, MAX_MESSAGE));
      this.wireReceived += r.wire;
      return r.message;
    });
  }

  /** Reads extents from the device and sends them as the batch's records (each through zstd first when level > 0). */
  send(id: number, device: BlockDevice, extents: Extent[], bytes: number, level: number, rate: TokenBucket | null): Promise<void> {
    device.checkBatch(extents, 'gather');
    const records = recordsOf(bytes);
    return this.run(this.out, async (key, seq) => {
      if (rate) await rate.take(bytes);
      const r = this.count(await device.track(nb.sendExtents(this.fd, key, seq, id, device.handle('gather'), device.path, toFlat(extents), level, records)));
      this.wireSent += r.wire;
      this.payloadSent += bytes;
    }, records);
  }

  /**
   * Receives one record and writes it to the extents, only once its tag held. With `verify`,
   * then reads the extents back from the device and compares them with what the tag vouched
   * for (the sender's bytes); resolves to true when that was done, and fails with ERR_VERIFY
   * when the device returned something else.
   */
  recv(id: number, device: BlockDevice, extents: Extent[], bytes: number, verify = false): Promise<boolean> {
    device.checkBatch(extents, 'scatter');
    const records = recordsOf(bytes);
    return this.run(this.in, async (key, seq) => {
      const r = this.count(await device.track(nb.recvExtents(this.fd, key, seq, id, device.handle('scatter'), device.path, toFlat(extents), verify, records)));
      this.wireReceived += r.wire;
      this.payloadReceived += bytes;
      return r.verified === true;
    }, records);
  }

  private count<T extends NativeResult>(r: T): T {
    for (const k of Object.keys(this.cpu) as Array<keyof StreamCpu>) this.cpu[k] += r.cpu[k];
    return r;
  }

  /** Wakes every blocked call (they fail) and closes the socket once none is left. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    nb.shutdown(this.fd);
    this.release();
  }

  private async run<T>(lane: Lane, op: (key: Buffer, seq: number) => Promise<T>, records = 1): Promise<T> {
    if (!this.usable) throw this.broken ?? connectionError('ECONNRESET', `data stream to ${this.label} is closed`);
    this.inFlight++;
    try {
      return await lane.next(async (key, seq) => {
        if (!this.usable) throw this.broken ?? connectionError('ECONNRESET', `data stream to ${this.label} is closed`);
        return op(key, seq);
      }, records);
    } catch (e) {
      // A failed record leaves both sides out of step: the stream is done for.
      const err = wrap(e, this.label);
      this.broken ??= err;
      this.close(); // shuts the socket down; the fd is released below once no call is in flight
      throw err;
    } finally {
      this.inFlight--;
      this.release();
    }
  }

  private release(): void {
    if (this.closed && this.inFlight === 0 && this.fd >= 0) {
      nb.close(this.fd);
      this.fd = -1;
    }
  }
}

/** Adds the data streams' bytes and native CPU to a connection's stats. */
export function withStreams(s: TransferStats, streams: Iterable<BulkStream>): TransferStats {
  for (const st of streams) {
    s.wireBytesSent += st.wireSent;
    s.wireBytesReceived += st.wireReceived;
    s.payloadBytesSent += st.payloadSent;
    s.payloadBytesReceived += st.payloadReceived;
    s.dataStreams ??= { count: 0, cpu: noCpu() };
    s.dataStreams.count++;
    for (const k of Object.keys(st.cpu) as Array<keyof StreamCpu>) s.dataStreams.cpu[k] += st.cpu[k];
  }
  return s;
}

function noCpu(): StreamCpu {
  return { read: 0, crypto: 0, socket: 0, write: 0, zstd: 0, verify: 0 };
}

/** Native errors from a stream say which stream; a failed tag becomes a checksum error the caller can branch on. */
function wrap(e: unknown, label: string): Error {
  const x = e as NodeJS.ErrnoException;
  if (x instanceof BisyncError) return x;
  if (x?.code === 'EBADMSG') return new BisyncError(ErrorCode.CHECKSUM, `data stream to ${label}: ${x.message}`, { cause: e });
  if (x?.syscall === 'verify') {
    return new BisyncError(ErrorCode.VERIFY, `verification failed: a batch written to '${x.path}' read back different (${x.message}); meta-data left untouched`,
      { hint: 'run the merge again; it resumes from its journal', cause: e });
  }
  if (x?.code === 'EPROTO') return new BisyncError(ErrorCode.PROTOCOL, `data stream to ${label}: ${x.message}`, { cause: e });
  if (x?.syscall === 'send' || x?.syscall === 'recv') return connectionError('ECONNRESET', `data stream to ${label} failed: ${x.message}`, e);
  return x instanceof Error ? x : new Error(String(e));
}

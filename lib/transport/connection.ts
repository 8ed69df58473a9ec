// One TLS connection carrying frames, used the same way by the agent and the
// client: checksums on every frame, optional zstd on data payloads, a rate
// limit on what this side sends, keep-alive so a dead peer is noticed, and
// accounting of bytes on the wire (TCP, so TLS overhead included) and payload.
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { BisyncError, ErrorCode } from '../device/errors';
import { TokenBucket } from './rate-limit';
import { FLAG_ZSTD, Frame, FrameHeader, FrameReader, FrameType, FrameTypeValue, HEADER_BYTES, MAX_PAYLOAD_BYTES, encodeHeader, nb, protocolError } from './wire';

/** Payloads smaller than this go uncompressed: zstd cannot win enough to pay for the call. */
const MIN_COMPRESS_BYTES = 4096;
const EMPTY = Buffer.alloc(0);

export interface TransferStats {
  /** Bytes this side put on the TCP connection (TLS records, frame headers, JSON, payload). */
  wireBytesSent: number;
  wireBytesReceived: number;
  /** Payload bytes (extents, block data, digests) before compression. */
  payloadBytesSent: number;
  payloadBytesReceived: number;
  /** Data streams used (bytes above include theirs), and the CPU seconds their native threads spent, by part. */
  dataStreams?: { count: number; cpu: { read: number; crypto: number; socket: number; write: number; zstd: number; verify: number } };
}

export interface ConnectionHandlers {
  /** A frame whose checksum held, payload decompressed. */
  onFrame(frame: Frame): void;
  /** A frame whose payload failed its checksum (or would not decompress): nothing in it may be used. */
  onCorruptFrame(header: FrameHeader, error: BisyncError): void;
  /** Called once when the connection is gone: error is null after a clean close(). */
  onClose(error: Error | null): void;
}

/** Test hook: return true to flip one payload byte of an outgoing frame after its checksum is computed. */
export const testHooks: { corruptOutgoing: ((type: FrameTypeValue, json: unknown) => boolean) | null } = { corruptOutgoing: null };

export function connectionError(code: 'ECONNRESET' | 'ETIMEDOUT', message: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

export class FramedConnection {
  compressionLevel = 0;
  rate: TokenBucket | null = null;
  private payloadSent = 0;
  private payloadReceived = 0;
  private lastReceived = performance.now();
  private keepalive: NodeJS.Timeout | null = null;
  private drained: Promise<void> | null = null;
  private closedWith: Error | null | undefined = undefined;
  private readonly reader: FrameReader;

  constructor(
    readonly socket: tls.TLSSocket,
    /** The TCP socket under TLS: its byte counters are the true wire bytes. */
    private readonly raw: net.Socket,
    /** "peer 10.0.0.2:7789", for messages. */
    readonly label: string,
    private readonly handlers: ConnectionHandlers,
  ) {
    this.reader = new FrameReader((h, body) => this.receive(h, body));
    socket.on('data', (chunk: Buffer) => {
      this.lastReceived = performance.now();
      try {
        this.reader.push(chunk);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    socket.on('error', (e) => this.fail(connectionError('ECONNRESET', `connection to ${label} failed: ${e.message}`, e)));
    socket.on('close', () => this.fail(connectionError('ECONNRESET', `connection to ${label} closed by the other side`)));
    socket.on('end', () => socket.end());
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  stats(): TransferStats {
    return {
      wireBytesSent: this.raw.bytesWritten,
      wireBytesReceived: this.raw.bytesRead,
      payloadBytesSent: this.payloadSent,
      payloadBytesReceived: this.payloadReceived,
    };
  }

  /**
   * Declares the peer dead after idleMs without a byte from it; with pingMs,
   * also sends a PING that often so the other side always has something to see.
   */
  startKeepalive(idleMs: number, pingMs?: number): void {
    if (this.keepalive) clearInterval(this.keepalive);
    const tick = Math.max(50, Math.min(idleMs / 4, pingMs ?? idleMs));
    let lastPing = performance.now();
    this.keepalive = setInterval(() => {
      const now = performance.now();
      if (now - this.lastReceived > idleMs) {
        this.fail(connectionError('ECONNRESET', `connection to ${this.label} lost: nothing received for ${(idleMs / 1000).toFixed(1)} s`));
      } else if (pingMs !== undefined && now - lastPing >= pingMs) {
        lastPing = now;
        this.send(FrameType.PING, 0, undefined).catch(() => undefined);
      }
    }, tick);
    this.keepalive.unref();
  }

  /** Sends one frame. Resolves once it is handed to the socket (waits while the socket is backed up). */
  async send(type: FrameTypeValue, id: number, json: unknown, parts: readonly Buffer[] = [], opts: { compress?: boolean; metered?: boolean } = {}): Promise<void> {
    this.checkOpen();
    let rawBytes = 0;
    for (const p of parts) rawBytes += p.length;
    if (rawBytes > MAX_PAYLOAD_BYTES) throw new RangeError(`a frame payload of ${rawBytes} bytes exceeds the limit of ${MAX_PAYLOAD_BYTES}; send smaller batches`);
    let wire: readonly Buffer[] = parts;
    let flags = 0;
    if (opts.compress && this.compressionLevel > 0 && rawBytes >= MIN_COMPRESS_BYTES) {
      const z = await nb.compress(parts as Buffer[], this.compressionLevel);
      if (z.length < rawBytes) {
        wire = [z];
        flags = FLAG_ZSTD;
      }
    }
    if (this.rate && rawBytes > 0 && opts.metered !== false) await this.rate.take(rawBytes);
    this.checkOpen();
    const jsonBuf = json === undefined ? EMPTY : Buffer.from(JSON.stringify(json));
    const checksum = nb.hashBuffers([jsonBuf, ...wire]);
    if (testHooks.corruptOutgoing && wire.length > 0 && testHooks.corruptOutgoing(type, json)) wire = corruptLast(wire);
    let wireBytes = 0;
    for (const p of wire) wireBytes += p.length;
    // Header and JSON in one small write, then each payload part as it is: one
    // write per buffer lets TLS encrypt straight from it (a corked writev would
    // first copy everything into one block).
    const head = Buffer.allocUnsafe(HEADER_BYTES + jsonBuf.length);
    encodeHeader({ type, flags, id, jsonBytes: jsonBuf.length, wireBytes, rawBytes, checksum }).copy(head);
    jsonBuf.copy(head, HEADER_BYTES);
    let ok = this.socket.write(head);
    for (const p of wire) if (p.length) ok = this.socket.write(p);
    this.payloadSent += rawBytes;
    if (!ok) await this.waitDrain();
  }

  /** Ends the connection cleanly (after what is queued has been written). */
  close(): void {
    if (this.closed) return;
    this.finish(null);
    this.socket.end();
  }

  /** Tears the connection down with an error; every handler sees it once. */
  fail(error: Error): void {
    if (this.closed) return;
    this.finish(error);
    this.socket.destroy();
  }

  private finish(error: Error | null): void {
    this.closedWith = error;
    if (this.keepalive) clearInterval(this.keepalive);
    this.handlers.onClose(error);
  }

  private checkOpen(): void {
    if (this.closedWith !== undefined) throw this.closedWith ?? connectionError('ECONNRESET', `connection to ${this.label} is closed`);
  }

  private waitDrain(): Promise<void> {
    this.drained ??= new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.drained = null;
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
    return this.drained;
  }

  private receive(h: FrameHeader, body: Buffer): void {
    if (!nb.hashBuffers([body]).equals(h.checksum)) {
      this.handlers.onCorruptFrame(h, new BisyncError(ErrorCode.CHECKSUM, `checksum mismatch in a ${h.wireBytes}-byte frame from ${this.label}: nothing in it was used`));
      return;
    }
    let json: unknown;
    try {
      json = h.jsonBytes ? JSON.parse(body.toString('utf8', 0, h.jsonBytes)) : undefined;
    } catch (e) {
      throw protocolError(`unreadable JSON in a frame from ${this.label}: ${(e as Error).message}`, e);
    }
    const wire = body.subarray(h.jsonBytes);
    if (!(h.flags & FLAG_ZSTD)) {
      this.deliver(h, json, wire);
      return;
    }
    nb.decompress(wire, h.rawBytes).then(
      (payload) => this.deliver(h, json, payload),
      (e: Error) => this.handlers.onCorruptFrame(h, new BisyncError(ErrorCode.CHECKSUM, `compressed payload from ${this.label} did not decompress: ${e.message}`, { cause: e })),
    );
  }

  private deliver(h: FrameHeader, json: unknown, payload: Buffer): void {
    if (this.closed) return;
    this.payloadReceived += h.rawBytes;
    if (h.type === FrameType.PING) {
      this.send(FrameType.PONG, 0, undefined).catch(() => undefined);
      return;
    }
    if (h.type === FrameType.PONG) return;
    this.handlers.onFrame({ type: h.type, id: h.id, json, payload });
  }
}

function corruptLast(wire: readonly Buffer[]): Buffer[] {
  const last = Buffer.from(wire[wire.length - 1]);
  if (last.length) last[last.length >> 1] ^= 0x5a;
  return [...wire.slice(0, -1), last];
}

export { HEADER_BYTES };

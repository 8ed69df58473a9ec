// The client side: an Endpoint whose node is a `drbd-bisync serve` agent. Each
// call is one request frame with its own id, so the merge engine may keep many
// batches in flight on one connection; replies come back in any order.
import * as net from 'node:net';
import * as os from 'node:os';
import * as tls from 'node:tls';
import type { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode } from '../device/errors';
import { type Extent, totalBytes } from '../device/extent';
import { retryWhile } from '../device/retry';
import type { MetadataReport, MetadataUpdate } from '../drbd/types';
import { BULK_ALPN, BulkStream, checkStreams, defaultStreams, quiesce, withStreams } from './bulk';
import type { LvmView, VolumeGroup } from '../lvm/types';
import { FramedConnection, TransferStats, connectionError } from './connection';
import type { BlockHashes, Endpoint, EndpointInfo } from './endpoint';
import { AgentHello, ClientHello, Compression, FEATURES, HandbackAccepted, HandbackRequest, Method, RequestJson, errorFromJson, versionMismatch } from './protocol';
import { DEFAULT_IDENTITY, PSK_CIPHERS, checkPsk, isAuthFailure } from './psk';
import { TokenBucket, checkRate } from './rate-limit';
import { Frame, FrameHeader, FrameType, PROTOCOL_VERSION, extentsFromBuffer, extentsToBuffer, protocolError } from './wire';

export interface ConnectPeerOptions {
  host: string;
  port: number;
  psk: Buffer;
  /** PSK identity (default 'drbd-bisync'); must match the agent's. */
  identity?: string;
  compression?: Compression;
  /** zstd level when compression is 'zstd' (default 1: fast enough not to slow a LAN). */
  compressionLevel?: number;
  /** Payload bytes per second, each direction (the agent honours it for what it sends). */
  rateLimit?: number;
  /** Aborts connecting and the handshake. */
  signal?: AbortSignal;
  /** Give up connecting after this long (default 15 s). */
  connectTimeoutMs?: number;
  /**
   * While the agent's host refuses the connection (nothing listens yet, e.g. `serve --wait-down`
   * still waits for its resource to go down), try again every 100 ms for up to this long
   * (default 0: a refusal fails at once). Other errors never wait.
   */
  waitForAgentMs?: number;
  /** Called each time a refused connection is tried again (to tell a user what the wait is for). */
  onWaitForAgent?: () => void;
  /** Declare the connection dead after this long without a byte from the agent (default 30 s). */
  idleTimeoutMs?: number;
  /**
   * Data streams for block data moved between a local device and the agent's
   * (default: one per core, 2 to 8); 0 keeps block data on the control connection.
   */
  streams?: number;
}

interface Pending {
  method: Method;
  resolve(f: Frame): void;
  reject(e: Error): void;
}

export class RemoteEndpoint implements Endpoint {
  /** The agent's host name, from its hello. */
  hostname = '';
  compression: Compression = 'none';
  private conn!: FramedConnection;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  /** Calls not settled yet, so close() can wait for them. */
  private calls = new Set<Promise<Frame>>();
  private helloWaiter: Pending | null = null;
  private closing: Promise<void> | null = null;
  /** Set by connectPeer when the agent offered data streams. */
  private bulk: { token: string; want: number; opts: ConnectPeerOptions; streams: Promise<BulkStream[] | null> | null } | null = null;
  private turn = { out: 0, in: 0 };

  /** @internal use connectPeer() */
  constructor(readonly label: string) {}

  /** Bytes of the control connection and every data stream together. */
  stats(): TransferStats {
    return withStreams(this.conn.stats(), this.openStreams);
  }

  /** Data streams in use (0 until the first bulk transfer opens them, or when the agent offers none). */
  get streamCount(): number {
    return this.openStreams.length;
  }

  private openStreams: BulkStream[] = [];

  /**
   * The batch size that suits bulk transfers between a local device and this endpoint on its
   * data streams, or undefined for the general default. There a batch moves as 512 KiB
   * records, so its size costs no memory; larger batches only mean fewer control requests,
   * each of which costs both nodes' JavaScript work. Under a rate limit batches stay small:
   * the limit is taken per batch.
   */
  get bulkBatchBytes(): number | undefined {
    return this.plannedStreams > 0 && !this.conn.rate ? 32 << 20 : undefined;
  }

  /** Data streams this endpoint will use for bulk transfers (0: none). */
  get plannedStreams(): number {
    return this.bulk?.want ?? 0;
  }

  /**
   * Sends extents of a local device to the same extents of the agent's device:
   * on a data stream when there are any, else as an ordinary write. With
   * `verify` on a data stream the agent reads the batch back after writing it
   * and compares (see BulkStream.recv); resolves to true when that was done.
   */
  async pushFrom(device: BlockDevice, extents: Extent[], verify = false): Promise<boolean> {
    const streams = await this.dataStreams();
    if (!streams) return this.write(extents, await device.gather(extents)).then(() => false);
    const s = this.turn.out++ % streams.length;
    const bytes = totalBytes(extents);
    const id = this.takeId();
    // The local half first: it validates the extents (and throws) before the agent waits for a record.
    const sent = streams[s].send(id, device, extents, bytes, this.conn.compressionLevel, this.conn.rate);
    const reply = this.call('bulkWrite', { n: extents.length, s, ...(verify ? { v: true } : {}) }, [extentsToBuffer(extents)], false, id);
    const [f] = await settleBoth(reply, sent, streams[s]);
    return (f.json as { verified?: unknown } | null)?.verified === true;
  }

  /** Fetches extents of the agent's device into the same extents of a local device; `verify` as for pushFrom, done here. */
  async pullInto(device: BlockDevice, extents: Extent[], verify = false): Promise<boolean> {
    const streams = await this.dataStreams();
    if (!streams) return device.scatter(extents, await this.read(extents)).then(() => false);
    const s = this.turn.in++ % streams.length;
    const id = this.takeId();
    const received = streams[s].recv(id, device, extents, totalBytes(extents), verify);
    const reply = this.call('bulkRead', { n: extents.length, s }, [extentsToBuffer(extents)], false, id);
    const [, verified] = await settleBoth(reply, received, streams[s]);
    return verified;
  }

  prepareTransfer(): void {
    // Errors reach the first bulk call, which awaits the same promise.
    this.dataStreams().catch(() => undefined);
  }

  /** Opens the data streams once, on first use; null when there are none to use. */
  private dataStreams(): Promise<BulkStream[] | null> {
    const b = this.bulk;
    if (!b || b.want === 0) return Promise.resolve(null);
    b.streams ??= (async () => {
      const opened = await Promise.allSettled(Array.from({ length: b.want }, (_, i) => openStream(b.opts, this.label, b.token, i)));
      const streams = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        // The ones that did open would otherwise stay open on both nodes until the process ends.
        for (const st of streams) st.close();
        throw failed.reason;
      }
      if (this.conn.closed || this.closing) {
        for (const st of streams) st.close();
        throw connectionError('ECONNRESET', `connection to ${this.label} closed while its data streams opened`);
      }
      this.openStreams = streams;
      return streams;
    })();
    return b.streams;
  }

  /** @internal */
  offerBulk(token: string | undefined, opts: ConnectPeerOptions): void {
    if (token && /^[0-9a-f]{32}$/.test(token)) this.bulk = { token, want: opts.streams ?? defaultStreams(os.availableParallelism()), opts, streams: null };
  }

  /** Requests not answered yet. */
  get outstanding(): number {
    return this.pending.size;
  }

  async info(): Promise<EndpointInfo> {
    return (await this.call('info', {})).json as EndpointInfo;
  }

  async changeSet(opts: { peerNodeId?: number } = {}): Promise<Extent[]> {
    const f = await this.call('changeSet', opts.peerNodeId === undefined ? {} : { peerNodeId: opts.peerNodeId });
    return extentsFromBuffer(f.payload, (f.json as { n: number }).n);
  }

  async hash(extents: Extent[], blockSize: number): Promise<BlockHashes> {
    const f = await this.call('hash', { n: extents.length, blockSize }, [extentsToBuffer(extents)]);
    const digestBytes = (f.json as { digestBytes: number }).digestBytes;
    if (!Number.isSafeInteger(digestBytes) || digestBytes % 16 !== 0 || f.payload.length !== digestBytes + digestBytes / 16) {
      throw protocolError(`hash reply from ${this.label} has ${f.payload.length} bytes for ${digestBytes} bytes of digests`);
    }
    return { digests: f.payload.subarray(0, digestBytes), zero: f.payload.subarray(digestBytes) };
  }

  async read(extents: Extent[]): Promise<Buffer> {
    const f = await this.call('read', { n: extents.length }, [extentsToBuffer(extents)]);
    const want = totalBytes(extents);
    if (f.payload.length !== want) throw protocolError(`read reply from ${this.label} has ${f.payload.length} bytes, the extents cover ${want}`);
    return f.payload;
  }

  async write(extents: Extent[], data: Buffer): Promise<void> {
    const want = totalBytes(extents);
    if (!Buffer.isBuffer(data) || data.length !== want) throw new RangeError(`write data is ${Buffer.isBuffer(data) ? `${data.length} bytes` : typeof data} but the extents cover ${want}`);
    await this.call('write', { n: extents.length }, [extentsToBuffer(extents), data], true);
  }

  async flush(): Promise<void> {
    await this.call('flush', {});
  }

  async writeMetadata(update: MetadataUpdate): Promise<MetadataReport> {
    return (await this.call('writeMetadata', { update })).json as MetadataReport;
  }

  /** Online merge: asks the agent to give its resource back to DRBD once this session ends. */
  async handback(req: HandbackRequest): Promise<HandbackAccepted> {
    return (await this.call('handback', { handback: req })).json as HandbackAccepted;
  }

  async lvm(opts: { history?: boolean } = {}): Promise<LvmView | null> {
    return (await this.call('lvm', opts.history === false ? { history: false } : {})).json as LvmView | null;
  }

  async lvmVersion(seqno: number, checksum: number): Promise<VolumeGroup> {
    return (await this.call('lvmVersion', { seqno, checksum })).json as VolumeGroup;
  }

  /** Ends the session once calls in flight are answered. The agent's device stays open for the next session. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.calls]);
      if (!this.conn.closed) {
        await this.conn.send(FrameType.BYE, 0, undefined).catch(() => undefined);
        this.conn.close();
      }
      for (const st of this.openStreams) st.close();
    })();
    return this.closing;
  }

  /** @internal */
  attach(conn: FramedConnection): void {
    this.conn = conn;
  }

  /** @internal handlers for the connection */
  onFrame(f: Frame): void {
    if (f.type === FrameType.HELLO || (f.type === FrameType.ERROR && f.id === 0 && this.helloWaiter)) {
      const w = this.helloWaiter;
      this.helloWaiter = null;
      if (!w) return this.conn.fail(protocolError(`unexpected hello from ${this.label}`));
      if (f.type === FrameType.HELLO) w.resolve(f);
      else w.reject(errorFromJson(f.json, this.label));
      return;
    }
    if (f.type === FrameType.BYE || (f.type === FrameType.ERROR && f.id === 0)) {
      const why = f.type === FrameType.BYE ? connectionError('ECONNRESET', `${this.label} ended the session (the agent is shutting down)`) : errorFromJson(f.json, this.label);
      this.conn.fail(why);
      return;
    }
    const p = this.pending.get(f.id);
    if (!p || (f.type !== FrameType.REPLY && f.type !== FrameType.ERROR)) {
      this.conn.fail(protocolError(`unexpected frame (type ${f.type}, id ${f.id}) from ${this.label}`));
      return;
    }
    this.pending.delete(f.id);
    if (f.type === FrameType.REPLY) p.resolve(f);
    else p.reject(errorFromJson(f.json, `${this.label} (${p.method})`));
  }

  /** @internal a reply that failed its checksum fails that call only; its data is never used. */
  onCorruptFrame(h: FrameHeader, e: BisyncError): void {
    const p = this.pending.get(h.id);
    if (h.type !== FrameType.REPLY || !p) return this.conn.fail(e);
    this.pending.delete(h.id);
    p.reject(new BisyncError(ErrorCode.CHECKSUM, `${e.message} (reply to ${p.method})`));
  }

  /** @internal every call still waiting fails with the reason; none hangs. */
  onClose(error: Error | null): void {
    // Native calls blocked on a data stream wake up and fail with it.
    for (const st of this.openStreams) st.close();
    const calls = [...this.pending.values()];
    this.pending.clear();
    const w = this.helloWaiter;
    this.helloWaiter = null;
    const reason = error ?? connectionError('ECONNRESET', `connection to ${this.label} was closed`);
    w?.reject(reason);
    for (const p of calls) {
      const e = Object.assign(new Error(`${p.method} failed: ${reason.message}${calls.length > 1 ? ` (${calls.length} calls were outstanding)` : ''}`, { cause: reason }), {
        code: (reason as { code?: string }).code ?? 'ECONNRESET',
      });
      p.reject(e);
    }
  }

  /** @internal */
  waitHello(): Promise<Frame> {
    return new Promise((resolve, reject) => {
      this.helloWaiter = { method: 'info', resolve, reject };
    });
  }

  private takeId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private call(method: Method, args: Omit<RequestJson, 'm'>, parts: Buffer[] = [], compress = false, id = this.takeId()): Promise<Frame> {
    if (this.closing) return Promise.reject(connectionError('ECONNRESET', `${method} on a closed connection to ${this.label}`));
    // Bulk requests carry only extents and must leave in call order (the
    // agent queues their records in that order): no rate wait for them.
    const metered = method !== 'bulkWrite' && method !== 'bulkRead';
    const call = new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject });
      this.conn.send(FrameType.REQUEST, id, { m: method, ...args }, parts, { compress, metered }).catch((e: Error) => {
        if (this.pending.delete(id)) reject(e);
      });
    });
    this.calls.add(call);
    const settled = (): void => void this.calls.delete(call);
    call.then(settled, settled);
    return call;
  }
}

/** Connects to an agent, authenticates with the pre-shared key and agrees on compression and rate. */
export async function connectPeer(opts: ConnectPeerOptions): Promise<RemoteEndpoint> {
  const o = checkConnectOptions(opts);
  const label = `peer ${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  // Started before the other node goes down, a merge connects the moment its agent listens.
  return retryWhile(() => connectOnce(o, label), {
    retryable: (e) => (e as NodeJS.ErrnoException).code === 'ECONNREFUSED',
    forMs: o.waitForAgentMs ?? 0,
    onRetry: () => o.onWaitForAgent?.(),
    signal: o.signal,
  });
}

async function connectOnce(o: ConnectPeerOptions, label: string): Promise<RemoteEndpoint> {
  // One deadline for TCP connect, TLS handshake and hello: a port that accepts
  // but never answers must not hang the caller.
  const timeoutMs = o.connectTimeoutMs ?? 15_000;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(connectionError('ETIMEDOUT', `cannot connect to ${label}: no answer (TCP, TLS handshake and hello) in ${timeoutMs / 1000} s`)), timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, deadline.signal]) : deadline.signal;
  try {
    return await handshake(o, label, signal);
  } finally {
    clearTimeout(timer);
  }
}

async function handshake(o: ConnectPeerOptions, label: string, signal: AbortSignal): Promise<RemoteEndpoint> {
  const raw = await openTcp(o.host, o.port, label, signal);
  const sock = await startTls(raw, o, label, signal);
  const remote = new RemoteEndpoint(label);
  const conn = new FramedConnection(sock, raw, label, {
    onFrame: (f) => remote.onFrame(f),
    onCorruptFrame: (h, e) => remote.onCorruptFrame(h, e),
    onClose: (e) => remote.onClose(e),
  });
  remote.attach(conn);
  const idle = o.idleTimeoutMs ?? 30_000;
  const abort = (): void => conn.fail(abortReason(signal));
  signal.addEventListener('abort', abort, { once: true });
  try {
    const helloReply = remote.waitHello();
    const hello: ClientHello = { protocol: PROTOCOL_VERSION, features: [...FEATURES], compression: o.compression ?? 'none', rateLimit: o.rateLimit ?? null, idleTimeoutMs: idle };
    await conn.send(FrameType.HELLO, 0, hello);
    const reply = (await helloReply.catch((e: unknown) => {
      throw olderAgent(e, label) ?? e;
    })).json as AgentHello;
    if (reply.protocol !== PROTOCOL_VERSION) throw versionMismatch('agent', reply.protocol, 'this client', label);
    remote.hostname = String(reply.hostname ?? '');
    remote.compression = reply.compression === 'zstd' ? 'zstd' : 'none';
    remote.offerBulk(reply.bulkToken, o);
    conn.compressionLevel = remote.compression === 'zstd' ? (o.compressionLevel ?? 1) : 0;
    if (o.rateLimit) conn.rate = new TokenBucket(o.rateLimit);
    conn.startKeepalive(idle, Math.max(100, idle / 6));
    return remote;
  } catch (e) {
    conn.fail(e as Error);
    throw e;
  } finally {
    signal.removeEventListener('abort', abort);
  }
}

/**
 * An agent older than the lvm calls refuses our hello with its own wording
 * ("this agent speaks 1"); say which side to upgrade instead.
 */
function olderAgent(e: unknown, label: string): Error | null {
  const m = /this agent speaks (\d+)/.exec((e as Error)?.message ?? '');
  return m && Number(m[1]) !== PROTOCOL_VERSION ? versionMismatch('agent', Number(m[1]), 'this client', label) : null;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

function checkConnectOptions(opts: ConnectPeerOptions): ConnectPeerOptions {
  if (!opts || typeof opts.host !== 'string' || opts.host === '') throw new TypeError(`peer host must be a non-empty string, got ${JSON.stringify(opts?.host)}`);
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new RangeError(`peer port must be an integer from 1 to 65535, got ${String(opts.port)}`);
  checkPsk(opts.psk);
  if (opts.compression !== undefined && opts.compression !== 'none' && opts.compression !== 'zstd') throw new RangeError(`compression must be 'none' or 'zstd', got ${JSON.stringify(opts.compression)}`);
  if (opts.compressionLevel !== undefined && (!Number.isInteger(opts.compressionLevel) || opts.compressionLevel < 1 || opts.compressionLevel > 19)) throw new RangeError(`compression level must be an integer from 1 to 19, got ${String(opts.compressionLevel)}`);
  if (opts.rateLimit !== undefined) checkRate(opts.rateLimit);
  if (opts.streams !== undefined) checkStreams(opts.streams);
  if (opts.connectTimeoutMs !== undefined && !(opts.connectTimeoutMs > 0)) throw new RangeError(`connect timeout must be a positive number of ms, got ${String(opts.connectTimeoutMs)}`);
  if (opts.waitForAgentMs !== undefined && !(Number.isFinite(opts.waitForAgentMs) && opts.waitForAgentMs >= 0)) throw new RangeError(`wait for the agent must be a number of ms, 0 or more, got ${String(opts.waitForAgentMs)}`);
  if (opts.idleTimeoutMs !== undefined && !(opts.idleTimeoutMs >= 200)) throw new RangeError(`idle timeout must be at least 200 ms, got ${String(opts.idleTimeoutMs)}`);
  return opts;
}

function openTcp(host: string, port: number, label: string, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host, port, noDelay: true });
    const fail = (e: Error): void => {
      cleanup();
      raw.destroy();
      reject(e);
    };
    const onError = (e: NodeJS.ErrnoException): void =>
      fail(Object.assign(new Error(`cannot connect to ${label}: ${e.code === 'ECONNREFUSED' ? 'connection refused (is `drbd-bisync serve` running there?)' : e.message}`, { cause: e }), { code: e.code, errno: e.errno, syscall: e.syscall }));
    const onAbort = (): void => fail(abortReason(signal));
    const cleanup = (): void => {
      raw.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    raw.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    raw.once('connect', () => {
      cleanup();
      raw.on('error', () => undefined); // the TLS socket above reports the same failure
      raw.setKeepAlive(true, 10_000);
      resolve(raw);
    });
  });
}

/** @internal Opens data stream `index`: TCP, TLS-PSK handshake naming the bulk ALPN, then the sealed hello with the session token. */
export async function openStream(o: ConnectPeerOptions, label: string, token: string, index: number): Promise<BulkStream> {
  const signal = AbortSignal.timeout(o.connectTimeoutMs ?? 15_000);
  const raw = await openTcp(o.host, o.port, label, signal);
  const sock = await startTls(raw, o, label, signal, BULK_ALPN);
  let stream: BulkStream;
  try {
    await quiesce(sock, raw);
    stream = BulkStream.adopt(sock, raw, true, `${label} (data stream ${index})`);
  } catch (e) {
    sock.destroy(); // its reading is stopped: left open, it would keep the process alive
    throw e;
  }
  const timer = setTimeout(() => stream.close(), o.connectTimeoutMs ?? 15_000);
  try {
    await stream.sendMessage(0, Buffer.from(JSON.stringify({ token, index })));
    const answer = JSON.parse((await stream.recvMessage(0)).toString('utf8')) as { ok?: unknown };
    if (answer.ok !== true) throw protocolError(`${label} refused data stream ${index}`);
    return stream;
  } catch (e) {
    stream.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Both halves of a bulk call must finish. A failed reply closes the stream, so
 * a local half waiting on a record the agent will not send or read wakes up;
 * the agent's own error explains more than the torn stream does.
 */
async function settleBoth<T>(reply: Promise<Frame>, local: Promise<T>, stream: BulkStream): Promise<[Frame, T]> {
  reply.catch(() => stream.close());
  const [r, l] = await Promise.allSettled([reply, local]);
  if (r.status === 'rejected') throw r.reason;
  if (l.status === 'rejected') throw l.reason;
  return [r.value, l.value];
}

function startTls(raw: net.Socket, o: ConnectPeerOptions, label: string, signal: AbortSignal, alpn?: string): Promise<tls.TLSSocket> {
  const identity = o.identity ?? DEFAULT_IDENTITY;
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      socket: raw,
      ciphers: PSK_CIPHERS,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      pskCallback: () => ({ psk: o.psk, identity }),
      checkServerIdentity: () => undefined,
      ...(alpn ? { ALPNProtocols: [alpn] } : {}),
    });
    const onAbort = (): void => {
      sock.destroy();
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const onError = (e: Error): void => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      reject(
        isAuthFailure(e)
          ? new BisyncError(ErrorCode.REFUSED, `authentication failed with ${label}: pre-shared key mismatch (or the agent expects a PSK identity other than '${identity}')`, { cause: e, hint: 'use the same --psk-file on both nodes' })
          : Object.assign(new Error(`TLS handshake with ${label} failed: ${e.message}`, { cause: e }), { code: (e as { code?: string }).code ?? 'ECONNRESET' }),
      );
    };
    sock.once('error', onError);
    sock.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

// The node agent behind `drbd-bisync serve`: serves one Endpoint to one
// authenticated client at a time over TLS-PSK. A session ending never closes
// the endpoint: the coordinator may reconnect after a cut and carry on.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as os from 'node:os';
import * as tls from 'node:tls';
import type { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode } from '../device/errors';
import { type Extent, totalBytes } from '../device/extent';
import type { MetadataUpdate } from '../drbd/types';
import { BULK_ALPN, BulkStream, deviceOf, quiesce, withStreams } from './bulk';
import { FramedConnection, TransferStats } from './connection';
import type { Endpoint } from './endpoint';
import { AgentHello, FEATURES, HandbackAccepted, HandbackRequest, RequestJson, checkClientHello, checkRequest, errorToJson } from './protocol';
import { DEFAULT_IDENTITY, PSK_CIPHERS, checkPsk, isAuthFailure } from './psk';
import { TokenBucket } from './rate-limit';
import { Frame, FrameHeader, FrameType, extentsFromBuffer, extentsToBuffer, protocolError } from './wire';

export interface ResyncAgentOptions {
  endpoint: Endpoint;
  psk: Buffer;
  /** The PSK identity clients must present (default 'drbd-bisync'). */
  identity?: string;
  listen: { host: string; port: number };
  /** Stop listening once the first session has ended. */
  once?: boolean;
  /** zstd level for what the agent sends when the client asks for compression (default 1). */
  compressionLevel?: number;
  /** Time allowed for the TLS handshake and hello (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Accepts a hand-back request (online merge); without it such requests are refused. */
  onHandback?: (req: HandbackRequest) => HandbackAccepted;
}

export interface SessionInfo {
  /** "address:port" of the client. */
  remote: string;
  compression: 'none' | 'zstd';
  rateLimit: number | null;
}

export interface SessionEnd extends SessionInfo {
  /** Why it ended; null for a clean goodbye. */
  error: Error | null;
  /** The error's message (error itself does not survive JSON.stringify). */
  reason: string | null;
  stats: TransferStats;
  requests: number;
}

interface Reply {
  json?: unknown;
  parts?: Buffer[];
  compress?: boolean;
}

export class ResyncAgent extends EventEmitter {
  private readonly server: net.Server;
  private readonly identity: string;
  private active: Session | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: ResyncAgentOptions) {
    super();
    if (!opts || typeof opts.endpoint !== 'object' || opts.endpoint === null) throw new TypeError('ResyncAgent needs an endpoint');
    checkPsk(opts.psk);
    checkListen(opts.listen);
    this.identity = opts.identity ?? DEFAULT_IDENTITY;
    this.server = net.createServer((raw) => this.accept(raw));
  }

  /** Starts listening; resolves to the bound address (port 0 picks a free port). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        this.server.off('error', reject);
        this.server.on('error', (e) => this.report(e));
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  get sessionActive(): boolean {
    return this.active !== null;
  }

  /** Stops listening and ends the session in progress (its calls in flight finish first); then emits 'close'. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      if (this.active) await this.active.end();
      await stopped;
      this.emit('close');
    })();
    return this.closing;
  }

  /** @internal a session's hand-back request, for the owner's onHandback. */
  acceptHandback(req: HandbackRequest): HandbackAccepted {
    if (!this.opts.onHandback) {
      throw new BisyncError(ErrorCode.REFUSED, 'this agent cannot hand its resource back to DRBD: start `drbd-bisync serve` with --resource for an online merge');
    }
    return this.opts.onHandback(req);
  }

  /** 'error' is for the operator's log; without a listener the agent stays quiet rather than crash. */
  private report(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  private accept(raw: net.Socket): void {
    const remote = `${raw.remoteAddress}:${raw.remotePort}`;
    raw.setNoDelay(true);
    raw.setKeepAlive(true, 10_000);
    raw.on('error', () => undefined); // the TLS socket above reports the same failure
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      ciphers: PSK_CIPHERS,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      ALPNProtocols: [BULK_ALPN], // a client that offers it opens a data stream, one that offers nothing a session
      pskCallback: (_s: tls.TLSSocket, identity: string) => (identity === this.identity ? this.opts.psk : null),
    } as tls.TLSSocketOptions);
    const timer = setTimeout(() => {
      this.report(new BisyncError(ErrorCode.REFUSED, `TLS handshake from ${remote} did not finish in time`));
      sock.destroy();
    }, this.opts.handshakeTimeoutMs ?? 10_000);
    timer.unref();
    let reported = false;
    const onHandshakeError = (e: Error): void => {
      clearTimeout(timer);
      if (reported) return;
      reported = true;
      const msg = isAuthFailure(e)
        ? `authentication failed for a connection from ${remote}: pre-shared key mismatch (or PSK identity other than '${this.identity}')`
        : `TLS handshake with ${remote} failed: ${e.message}`;
      this.report(new BisyncError(ErrorCode.REFUSED, msg, { cause: e }));
      sock.destroy();
    };
    sock.on('error', onHandshakeError);
    sock.once('secure', () => {
      clearTimeout(timer);
      sock.off('error', onHandshakeError); // from here the session reports its own errors
      if (sock.alpnProtocol === BULK_ALPN) {
        // Until the stream takes the socket over, a failure (the client gone while the last
        // handshake bytes go out) surfaces in acceptStream, not as an unhandled 'error'.
        sock.on('error', () => undefined);
        void this.acceptStream(sock, raw, remote);
        return;
      }
      if (this.active || this.closing) {
        this.refuse(sock, raw, remote);
        return;
      }
      this.active = new Session(this, sock, raw, remote, this.opts.endpoint, this.opts.compressionLevel ?? 1, () => {
        this.active = null;
        if (this.opts.once) void this.close();
      });
    });
  }

  /**
   * A data stream: after its handshake it must prove, in its first sealed
   * record, the token of the session in progress; anything else is dropped.
   */
  private async acceptStream(sock: tls.TLSSocket, raw: net.Socket, remote: string): Promise<void> {
    let stream: BulkStream | null = null;
    // Before adopt there is no stream to close: the socket goes, which ends quiesce too.
    const timer = setTimeout(() => (stream ? stream.close() : sock.destroy()), this.opts.handshakeTimeoutMs ?? 10_000);
    timer.unref();
    try {
      await quiesce(sock, raw);
      stream = BulkStream.adopt(sock, raw, false, `client ${remote}`);
      const hello = JSON.parse((await stream.recvMessage(0)).toString('utf8')) as { token?: unknown; index?: unknown };
      const session = this.active;
      if (!session || !session.admits(hello.token, hello.index)) throw new BisyncError(ErrorCode.REFUSED, `data stream from ${remote} names no session in progress`);
      // Registered before the answer leaves: the client may name the stream in its next request,
      // and that request can be read before this answer's native send reports back.
      session.addStream(hello.index as number, stream);
      await stream.sendMessage(0, Buffer.from(JSON.stringify({ ok: true })));
    } catch (e) {
      stream?.close();
      sock.destroy();
      this.report(e instanceof BisyncError ? e : new BisyncError(ErrorCode.REFUSED, `data stream from ${remote} refused: ${(e as Error).message}`, { cause: e }));
    } finally {
      clearTimeout(timer);
    }
  }

  /** A second client gets a clear "busy" error instead of a hang. */
  private refuse(sock: tls.TLSSocket, raw: net.Socket, remote: string): void {
    const conn = new FramedConnection(sock, raw, `client ${remote}`, { onFrame: () => undefined, onCorruptFrame: () => undefined, onClose: () => undefined });
    const why = this.closing ? 'the agent is shutting down' : `the agent is busy with another session (from ${this.active?.remote})`;
    const e = new BisyncError(ErrorCode.REFUSED, why, { hint: 'only one merge may talk to a node at a time; wait for the other to finish' });
    conn.send(FrameType.ERROR, 0, errorToJson(e)).then(() => conn.close(), () => conn.close());
    setTimeout(() => sock.destroy(), 5000).unref(); // a client that never hangs up must not hold close() up
  }

  /** @internal */
  emitSession(kind: 'session' | 'session-end', info: SessionInfo | SessionEnd): void {
    this.emit(kind, info);
  }
}

/** One client's session: hello, then requests served concurrently, replies tagged with their ids. */
class Session {
  private readonly conn: FramedConnection;
  private info: SessionInfo | null = null;
  private inFlight = new Set<Promise<void>>();
  private requests = 0;
  private ended: Promise<void> | null = null;
  /** Set at hello when the client asked for data streams and the endpoint is a device. */
  private bulkToken: Buffer | null = null;
  private readonly streams = new Map<number, BulkStream>();

  constructor(
    private readonly agent: ResyncAgent,
    sock: tls.TLSSocket,
    raw: net.Socket,
    readonly remote: string,
    private readonly endpoint: Endpoint,
    private readonly level: number,
    private readonly onEnd: () => void,
  ) {
    this.conn = new FramedConnection(sock, raw, `client ${remote}`, {
      onFrame: (f) => this.onFrame(f),
      onCorruptFrame: (h, e) => this.onCorrupt(h, e),
      onClose: (e) => void this.closed(e),
    });
    // Until the hello says otherwise, a silent client is dropped after 30 s.
    this.conn.startKeepalive(30_000);
  }

  /** Ends the session: waits for calls in flight, then says goodbye. */
  /** Whether a data stream's hello names this session (and a stream index not yet taken). */
  admits(token: unknown, index: unknown): boolean {
    if (!this.bulkToken || this.conn.closed || typeof token !== 'string' || !/^[0-9a-f]{32}$/.test(token)) return false;
    if (!Number.isInteger(index) || (index as number) < 0 || (index as number) >= 64 || this.streams.has(index as number)) return false;
    return timingSafeEqual(Buffer.from(token, 'hex'), this.bulkToken);
  }

  addStream(index: number, stream: BulkStream): void {
    if (this.conn.closed) stream.close();
    else this.streams.set(index, stream);
  }

  async end(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    if (!this.conn.closed) {
      await this.conn.send(FrameType.BYE, 0, undefined).catch(() => undefined);
      this.conn.close();
    }
    await this.ended;
  }

  private onFrame(f: Frame): void {
    if (!this.info) {
      this.hello(f);
      return;
    }
    if (f.type === FrameType.BYE) {
      void this.end();
      return;
    }
    if (f.type !== FrameType.REQUEST) {
      this.conn.fail(protocolError(`unexpected frame type ${f.type} from client ${this.remote}`));
      return;
    }
    this.requests++;
    const work = this.serve(f).then(
      (r) => this.conn.send(FrameType.REPLY, f.id, r.json, r.parts ?? [], { compress: r.compress }),
      (e: unknown) => this.conn.send(FrameType.ERROR, f.id, errorToJson(e)),
    ).catch(() => undefined); // the connection is gone; its close handler reports that
    this.inFlight.add(work);
    void work.then(() => this.inFlight.delete(work));
  }

  private hello(f: Frame): void {
    try {
      if (f.type !== FrameType.HELLO) throw protocolError(`expected a hello from client ${this.remote}, got frame type ${f.type}`);
      const h = checkClientHello(f.json);
      const compression = h.compression === 'zstd' ? 'zstd' : 'none';
      this.conn.compressionLevel = compression === 'zstd' ? this.level : 0;
      if (h.rateLimit) this.conn.rate = new TokenBucket(Math.max(1024, h.rateLimit));
      this.conn.startKeepalive(h.idleTimeoutMs);
      this.info = { remote: this.remote, compression, rateLimit: h.rateLimit };
      const reply: AgentHello = { protocol: h.protocol, features: [...FEATURES], compression, hostname: os.hostname() };
      if (h.features.includes('bulk') && deviceOf(this.endpoint)) {
        this.bulkToken = randomBytes(16);
        reply.bulkToken = this.bulkToken.toString('hex');
      }
      this.conn.send(FrameType.HELLO, 0, reply).catch(() => undefined);
      this.agent.emitSession('session', this.info);
    } catch (e) {
      this.conn.send(FrameType.ERROR, 0, errorToJson(e)).then(() => this.conn.close(), () => undefined);
    }
  }

  private onCorrupt(h: FrameHeader, e: BisyncError): void {
    if (h.type === FrameType.REQUEST && this.info) {
      this.conn.send(FrameType.ERROR, h.id, errorToJson(e)).catch(() => undefined);
    } else {
      this.conn.fail(e);
    }
  }

  private async closed(error: Error | null): Promise<void> {
    this.ended ??= (async () => {
      // Blocked stream calls wake up and fail; they count as calls in flight.
      for (const st of this.streams.values()) st.close();
      // Calls already running finish before another session may start.
      await Promise.allSettled([...this.inFlight]);
      if (this.info) this.agent.emitSession('session-end', { ...this.info, error, reason: error?.message ?? null, stats: withStreams(this.conn.stats(), this.streams.values()), requests: this.requests });
      this.onEnd();
    })();
    await this.ended;
  }

  private handback(req: unknown): HandbackAccepted {
    const h = req as Partial<HandbackRequest> | undefined;
    if (!h || typeof h !== 'object' || (h.csumsAlg !== null && (typeof h.csumsAlg !== 'string' || !/^[a-z0-9-]{1,32}$/.test(h.csumsAlg)))) {
      throw protocolError(`bad hand-back request ${JSON.stringify(req)}`);
    }
    return this.agent.acceptHandback(h as HandbackRequest);
  }

  private async serve(f: Frame): Promise<Reply> {
    const r: RequestJson = checkRequest(f.json);
    const ep = this.endpoint;
    switch (r.m) {
      case 'info':
        return { json: await ep.info() };
      case 'changeSet': {
        const x = await ep.changeSet(r.peerNodeId === undefined ? {} : { peerNodeId: r.peerNodeId });
        return { json: { n: x.length }, parts: [extentsToBuffer(x)] };
      }
      case 'hash': {
        const res = await ep.hash(requestExtents(f, r), r.blockSize as number);
        return { json: { digestBytes: res.digests.length }, parts: [res.digests, res.zero] };
      }
      case 'read':
        return { parts: [await ep.read(requestExtents(f, r))], compress: true };
      case 'write': {
        const extents = writeExtents(f, r);
        const data = f.payload.subarray(extents.length * 16);
        const total = totalBytes(extents);
        if (data.length !== total) throw protocolError(`write carries ${data.length} bytes of data for extents covering ${total}`);
        await ep.write(extents, data);
        return {};
      }
      case 'flush':
        await ep.flush();
        return {};
      case 'writeMetadata':
        return { json: await ep.writeMetadata(r.update as MetadataUpdate) };
      case 'bulkWrite':
      case 'bulkRead': {
        // Queued on the stream before any await: records follow the order of these requests.
        const stream = r.s === undefined ? undefined : this.streams.get(r.s);
        if (!stream) throw protocolError(`${r.m} names data stream ${String(r.s)}, which this session does not have`);
        let op: Promise<boolean | void>;
        try {
          const { device, extents, bytes } = this.bulkCall(f, r);
          op = r.m === 'bulkWrite' ? stream.recv(f.id, device, extents, bytes, r.v === true) : stream.send(f.id, device, extents, bytes, this.conn.compressionLevel, this.conn.rate);
        } catch (e) {
          stream.close(); // the client's half of this record would wait for us forever
          throw e;
        }
        return (await op) === true ? { json: { verified: true } } : {};
      }
      case 'handback':
        return { json: this.handback(r.handback) };
      case 'lvm':
        return { json: await ep.lvm(r.history === false ? { history: false } : {}) };
      case 'lvmVersion':
        if (!Number.isSafeInteger(r.seqno) || !Number.isSafeInteger(r.checksum)) throw protocolError(`lvmVersion needs integer seqno and checksum, got ${JSON.stringify([r.seqno, r.checksum])}`);
        return { json: await ep.lvmVersion(r.seqno as number, r.checksum as number) };
    }
  }

  private bulkCall(f: Frame, r: RequestJson): { device: BlockDevice; extents: Extent[]; bytes: number } {
    const device = deviceOf(this.endpoint);
    if (!device) throw protocolError(`${r.m}: this agent serves no device directly`);
    const extents = r.m === 'bulkWrite' ? writeExtents(f, r) : requestExtents(f, r);
    return { device, extents, bytes: totalBytes(extents) };
  }
}

/**
 * Extents a write request names, apart from each other: a record's blocks are written
 * together (AIO), so the order of the list would not decide which of two overlapping writes
 * lands last. (Their order is free: apart, it changes nothing.)
 */
function writeExtents(f: Frame, r: RequestJson): Extent[] {
  const extents = requestExtents(f, r);
  const sorted = [...extents].sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < sorted.length; i++) {
    const [prev, prevLen] = sorted[i - 1];
    if (sorted[i][0] < prev + prevLen) throw protocolError(`${r.m}: extents to write overlap: [${prev}, ${prevLen}] and [${sorted[i][0]}, ${sorted[i][1]}]`);
  }
  return extents;
}

function requestExtents(f: Frame, r: RequestJson): Extent[] {
  if (r.n === undefined) throw protocolError(`request '${r.m}' without an extent count`);
  return extentsFromBuffer(f.payload, r.n);
}

function checkListen(l: unknown): void {
  const x = l as { host?: unknown; port?: unknown } | undefined;
  if (!x || typeof x.host !== 'string' || x.host === '') throw new TypeError(`listen.host must be a non-empty string, got ${JSON.stringify(x?.host)}`);
  if (typeof x.port !== 'number' || !Number.isInteger(x.port) || x.port < 0 || x.port > 65535) throw new RangeError(`listen.port must be an integer from 0 to 65535, got ${String(x.port)}`);
}

// What the frames say: the handshake, the Endpoint calls and their binary
// forms, and errors carried across with their SystemError fields intact.
import { BisyncError, ErrorCode, ErrorCodeValue } from '../device/errors';
import { PROTOCOL_VERSION, protocolError } from './wire';

export type Compression = 'none' | 'zstd';
/** 'bulk': block data may move on separate data streams (see bulk.ts). */
export const FEATURES = ['zstd', 'bulk'] as const;

export interface ClientHello {
  protocol: number;
  features: string[];
  compression: Compression;
  /** Bytes per second the agent may send (payload), or null for no limit. */
  rateLimit: number | null;
  /** The agent drops the session after this long without a byte from the client. */
  idleTimeoutMs: number;
}

export interface AgentHello {
  protocol: number;
  features: string[];
  compression: Compression;
  hostname: string;
  /** With the 'bulk' feature: the token a data stream must prove to join this session (hex). */
  bulkToken?: string;
}

/** The Endpoint methods a client may call. */
export const METHODS = ['info', 'changeSet', 'hash', 'read', 'write', 'flush', 'writeMetadata', 'lvm', 'lvmVersion', 'handback', 'bulkWrite', 'bulkRead'] as const;
export type Method = (typeof METHODS)[number];

export interface ErrorJson {
  name?: string;
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  hint?: string;
}

/** An Error as JSON: message plus the fields a caller branches on. */
export function errorToJson(e: unknown): ErrorJson {
  if (!(e instanceof Error)) return { message: String(e) };
  const x = e as Error & Partial<Omit<ErrorJson, 'message'>>;
  const out: ErrorJson = { name: x.name, message: x.message };
  if (typeof x.code === 'string') out.code = x.code;
  if (typeof x.errno === 'number') out.errno = x.errno;
  if (typeof x.syscall === 'string') out.syscall = x.syscall;
  if (typeof x.path === 'string') out.path = x.path;
  if (typeof x.hint === 'string') out.hint = x.hint;
  return out;
}

const BISYNC_CODES = new Set<string>(Object.values(ErrorCode));

/** Rebuilds an error sent by the other side; the message says where it happened. */
export function errorFromJson(j: unknown, where: string): Error {
  const o = (j && typeof j === 'object' ? j : { message: String(j) }) as ErrorJson;
  const message = `${where}: ${typeof o.message === 'string' ? o.message : 'unknown error'}`;
  if (typeof o.code === 'string' && BISYNC_CODES.has(o.code)) {
    return new BisyncError(o.code as ErrorCodeValue, message, o.hint ? { hint: o.hint } : undefined);
  }
  const e = new Error(message) as Error & Partial<ErrorJson>;
  if (typeof o.name === 'string' && o.name !== 'Error') e.name = o.name;
  for (const k of ['code', 'errno', 'syscall', 'path', 'hint'] as const) {
    if (o[k] !== undefined) (e as unknown as Record<string, unknown>)[k] = o[k];
  }
  return e;
}

export function checkClientHello(j: unknown): ClientHello {
  const h = j as Partial<ClientHello> | undefined;
  if (!h || typeof h !== 'object') throw protocolError('the first frame was not a hello');
  if (h.protocol !== PROTOCOL_VERSION) throw versionMismatch('client', h.protocol, 'this agent');
  if (h.compression !== 'none' && h.compression !== 'zstd') throw protocolError(`unknown compression ${JSON.stringify(h.compression)}`);
  if (h.rateLimit !== null && (typeof h.rateLimit !== 'number' || !(h.rateLimit > 0))) throw protocolError(`bad rate limit ${JSON.stringify(h.rateLimit)}`);
  if (typeof h.idleTimeoutMs !== 'number' || !(h.idleTimeoutMs >= 100)) throw protocolError(`bad idle timeout ${JSON.stringify(h.idleTimeoutMs)}`);
  return h as ClientHello;
}

/**
 * Both sides must speak the same protocol; the message names the side to
 * upgrade. `them` is the side whose version is `theirs`, `us` how we name ourselves.
 */
export function versionMismatch(them: 'client' | 'agent', theirs: unknown, us: string, label = `the ${them}`): BisyncError {
  const older = typeof theirs === 'number' && theirs < PROTOCOL_VERSION;
  const upgrade = older ? `upgrade drbd-bisync on ${them === 'client' ? 'the node running plan/merge' : 'the peer node (its `drbd-bisync serve`)'}` : `upgrade drbd-bisync on this node`;
  return new BisyncError(ErrorCode.PROTOCOL,
    `${label} speaks protocol ${String(theirs)}${older ? ' (an older drbd-bisync)' : ''}, ${us} speaks ${PROTOCOL_VERSION}: ${upgrade}`,
    { hint: `${upgrade}: both nodes must run the same drbd-bisync version`, refusal: true });
}

/** A request's JSON part: the method and its small arguments (extents and data go in the payload). */
export interface RequestJson {
  m: Method;
  /** Number of extents at the start of the payload (16 bytes each). */
  n?: number;
  blockSize?: number;
  peerNodeId?: number;
  update?: unknown;
  /** bulkWrite/bulkRead: the data stream that carries the batch (its record has this request's id). */
  s?: number;
  /**
   * bulkWrite: read the batch back from the device after writing it and compare it with what
   * arrived; the reply says `verified: true`, a difference is an ERR_VERIFY error.
   */
  v?: boolean;
  /** lvm: false skips the ring history. */
  history?: boolean;
  /** lvmVersion: which VG version. */
  seqno?: number;
  checksum?: number;
  handback?: HandbackRequest;
}

/** After an online merge: the agent's node gives its resource back to DRBD, as the resync target. */
export interface HandbackRequest {
  /** The csums-alg both nodes connect with (the survivor uses the same), or null for the configuration's. */
  csumsAlg: string | null;
}

/** The agent's answer; the hand-back itself starts once the session ends (the device must be released first). */
export interface HandbackAccepted {
  resource: string;
  /** Milliseconds the agent had been serving (its resource down) when it accepted. */
  servingMs: number;
  /** The drbdadm commands it will run, in order. */
  commands: string[];
}

export function checkRequest(j: unknown): RequestJson {
  const r = j as Partial<RequestJson> | undefined;
  if (!r || typeof r !== 'object' || !METHODS.includes(r.m as Method)) throw protocolError(`unknown request ${JSON.stringify((r as { m?: unknown } | undefined)?.m)}`);
  if (r.n !== undefined && (!Number.isSafeInteger(r.n) || r.n < 0)) throw protocolError(`bad extent count ${JSON.stringify(r.n)}`);
  return r as RequestJson;
}

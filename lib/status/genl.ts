// Generic netlink in TypeScript over the thin native socket: attribute
// encoding/decoding, the controller ("nlctrl") family lookup, and a socket
// wrapper. Nothing here knows DRBD.
import { native } from '../native/binding';
import { withStack } from '../device/errors';

interface GenlNative {
  genlOpen(groups: number[]): Promise<number>;
  genlClose(fd: number): Promise<void>;
  genlTransact(fd: number, family: number, cmd: number, version: number, dump: boolean, payload: Buffer): Promise<GenlMessage[]>;
  genlReceive(fd: number, timeoutMs: number): Promise<GenlMessage[]>;
}
const nb = native as unknown as GenlNative;

/** One generic netlink message as the kernel sent it. */
export interface GenlMessage {
  /** nlmsg_type: the family id. */
  type: number;
  flags: number;
  /** 0 for multicast notifications. */
  seq: number;
  cmd: number;
  version: number;
  /** Bytes after the genlmsghdr: the family's fixed header, then attributes. */
  payload: Buffer;
}

export interface Attr {
  /** Attribute type with the flag bits (nested, byte order / DRBD "mandatory") removed. */
  type: number;
  payload: Buffer;
}

const NLA_HDRLEN = 4;
/** NLA_F_NESTED (1<<15) and NLA_F_NET_BYTEORDER (1<<14); DRBD reuses bit 14 as "mandatory". */
const NLA_TYPE_MASK = 0x3fff;
const align4 = (n: number): number => (n + 3) & ~3;

/**
 * Calls fn(type, payloadStart, payloadEnd) for each attribute in buf[start, end)
 * without copying or slicing; a truncated tail is an error.
 */
export function forEachAttr(buf: Buffer, start: number, end: number, fn: (type: number, from: number, to: number) => void): void {
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > end) {
      throw new RangeError(`netlink attribute at byte ${off} has length ${len}, only ${end - off} bytes left`);
    }
    fn(type, off + NLA_HDRLEN, off + len);
    off += align4(len);
  }
}

/** Splits a byte run into netlink attributes; a truncated tail is an error. */
export function parseAttrs(buf: Buffer, start = 0): Attr[] {
  const out: Attr[] = [];
  forEachAttr(buf, start, buf.length, (type, from, to) => out.push({ type, payload: buf.subarray(from, to) }));
  return out;
}

/** First attribute of a type, as a map lookup. */
export function attrMap(attrs: Attr[]): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const a of attrs) if (!m.has(a.type)) m.set(a.type, a.payload);
  return m;
}

export const attrU16 = (b: Buffer): number => b.readUInt16LE(0);
export const attrU32 = (b: Buffer): number => b.readUInt32LE(0);
/** NUL-terminated string attribute. */
export function attrString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

/** Encodes one attribute (payload padded to 4 bytes). */
export function encodeAttr(type: number, payload: Buffer): Buffer {
  const len = NLA_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, NLA_HDRLEN);
  return out;
}
export const encodeString = (type: number, s: string): Buffer => encodeAttr(type, Buffer.from(`${s}\0`, 'utf8'));
export function encodeU32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return encodeAttr(type, b);
}
/** A nested attribute; NLA_F_NESTED is set only when asked (DRBD 8.4 kernels predate it). */
export function encodeNested(type: number, children: Buffer[], flagNested = false): Buffer {
  return encodeAttr(type | (flagNested ? 0x8000 : 0), Buffer.concat(children));
}

/** A generic netlink socket. Requests and notifications share nothing else. */
export class GenlSocket {
  private closed = false;
  private constructor(readonly fd: number) {}

  static async open(groups: number[] = []): Promise<GenlSocket> {
    return new GenlSocket(await withStack(nb.genlOpen(groups)));
  }

  /** One request; `dump` collects every part until NLMSG_DONE. */
  request(family: number, cmd: number, version: number, payload: Buffer, opts: { dump?: boolean } = {}): Promise<GenlMessage[]> {
    this.assertOpen();
    return withStack(nb.genlTransact(this.fd, family, cmd, version, !!opts.dump, payload));
  }

  /** Notifications queued within timeoutMs (none on timeout). */
  receive(timeoutMs: number): Promise<GenlMessage[]> {
    this.assertOpen();
    return withStack(nb.genlReceive(this.fd, timeoutMs));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await nb.genlClose(this.fd);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('generic netlink socket is closed');
  }
}

/** Runs body with a fresh socket, closed afterwards. */
export async function withGenlSocket<T>(body: (s: GenlSocket) => Promise<T>, groups: number[] = []): Promise<T> {
  const s = await GenlSocket.open(groups);
  try {
    return await body(s);
  } finally {
    await s.close();
  }
}

// ---- the controller family (linux/genetlink.h) ----
export const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR = { FAMILY_ID: 1, FAMILY_NAME: 2, VERSION: 3, HDRSIZE: 4, MAXATTR: 5, OPS: 6, MCAST_GROUPS: 7 } as const;
const CTRL_ATTR_OP = { ID: 1, FLAGS: 2 } as const;
const CTRL_ATTR_MCAST_GRP = { NAME: 1, ID: 2 } as const;
/** GENL_CMD_CAP_* bits in an op's flags. */
export const GenlOpFlags = { ADMIN_PERM: 0x01, DO: 0x02, DUMP: 0x04, HASPOL: 0x08, UNS_ADMIN_PERM: 0x10 } as const;

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrSize: number;
  maxAttr: number;
  ops: Array<{ id: number; flags: number }>;
  groups: Array<{ name: string; id: number }>;
}

/** Decodes a CTRL_CMD_NEWFAMILY reply. */
export function decodeFamily(msg: GenlMessage): GenlFamily {
  const a = attrMap(parseAttrs(msg.payload));
  const get = (t: number): Buffer | undefined => a.get(t);
  const id = get(CTRL_ATTR.FAMILY_ID);
  const name = get(CTRL_ATTR.FAMILY_NAME);
  if (!id || !name) throw new RangeError('nlctrl reply without a family id or name');
  const list = (t: number): Attr[][] => (get(t) ? parseAttrs(get(t)!).map((e) => parseAttrs(e.payload)) : []);
  return {
    id: attrU16(id),
    name: attrString(name),
    version: get(CTRL_ATTR.VERSION) ? attrU32(get(CTRL_ATTR.VERSION)!) : 0,
    hdrSize: get(CTRL_ATTR.HDRSIZE) ? attrU32(get(CTRL_ATTR.HDRSIZE)!) : 0,
    maxAttr: get(CTRL_ATTR.MAXATTR) ? attrU32(get(CTRL_ATTR.MAXATTR)!) : 0,
    ops: list(CTRL_ATTR.OPS).map((e) => {
      const m = attrMap(e);
      return { id: attrU32(m.get(CTRL_ATTR_OP.ID)!), flags: m.has(CTRL_ATTR_OP.FLAGS) ? attrU32(m.get(CTRL_ATTR_OP.FLAGS)!) : 0 };
    }),
    groups: list(CTRL_ATTR.MCAST_GROUPS).map((e) => {
      const m = attrMap(e);
      return { name: attrString(m.get(CTRL_ATTR_MCAST_GRP.NAME)!), id: attrU32(m.get(CTRL_ATTR_MCAST_GRP.ID)!) };
    }),
  };
}

/** Error for a family the kernel does not have (the module is not loaded). */
export class FamilyNotFoundError extends Error {
  readonly code = 'ENOENT';
  readonly errno = -2;
  readonly syscall = 'genl(CTRL_CMD_GETFAMILY)';
  /** A next step for the operator (the CLI prints it). */
  hint?: string;
  constructor(readonly family: string, message?: string, hint?: string) {
    super(message ?? `ENOENT: generic netlink family '${family}' not found`);
    this.name = 'FamilyNotFoundError';
    if (hint) this.hint = hint;
  }
}

/** Resolves a family by name through nlctrl: id, version, ops and multicast groups. */
export async function resolveFamily(name: string, sock?: GenlSocket): Promise<GenlFamily> {
  if (!name || Buffer.byteLength(name) > 15) throw new RangeError(`generic netlink family name must be 1..15 bytes, got '${name}'`);
  const ask = async (s: GenlSocket): Promise<GenlFamily> => {
    let replies: GenlMessage[];
    try {
      replies = await s.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, encodeString(CTRL_ATTR.FAMILY_NAME, name));
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new FamilyNotFoundError(name);
      throw e;
    }
    if (!replies.length) throw new FamilyNotFoundError(name);
    return decodeFamily(replies[0]);
  };
  return sock ? ask(sock) : withGenlSocket(ask);
}

/** Every registered family (a dump of nlctrl). */
export async function listFamilies(sock?: GenlSocket): Promise<GenlFamily[]> {
  const ask = async (s: GenlSocket): Promise<GenlFamily[]> =>
    (await s.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, Buffer.alloc(0), { dump: true })).map(decodeFamily);
  return sock ? ask(sock) : withGenlSocket(ask);
}

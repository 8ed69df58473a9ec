// The frame format. Every message on the TLS stream is one frame:
//
//   offset size
//    0     2   magic 0xB15C
//    2     1   type (FrameType)
//    3     1   flags (bit 0: payload is one zstd frame)
//    4     4   id: a request's number, echoed by its reply (0 for session frames)
//    8     4   JSON length
//   12     4   payload length on the wire
//   16     4   payload length before compression
//   20     4   reserved, 0
//   24    16   XXH3-128 of JSON + wire payload (canonical form)
//   40   ...   JSON (UTF-8), then the payload
//
// All integers little-endian. 40 bytes per frame is all the framing there is, so
// a batch of several MiB costs well under 0.01% extra.
import { BisyncError, ErrorCode } from '../device/errors';
import { native } from '../native/binding';

/** 2: the lvm and lvmVersion calls; 3: data streams carry a batch as several records (ALPN drbd-bisync-bulk/2), which a version-2 node cannot read. */
export const PROTOCOL_VERSION = 3;
export const MAGIC = 0xb15c;
export const HEADER_BYTES = 40;
/** Largest JSON part a peer may send (extents travel in the payload, so JSON stays small). */
export const MAX_JSON_BYTES = 16 << 20;
/** Largest payload (raw or compressed) a peer may send in one frame. */
export const MAX_PAYLOAD_BYTES = 1 << 30;

export const FrameType = {
  HELLO: 1,
  REQUEST: 2,
  REPLY: 3,
  ERROR: 4,
  PING: 5,
  PONG: 6,
  BYE: 7,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export const FLAG_ZSTD = 1;

export interface FrameHeader {
  type: FrameTypeValue;
  flags: number;
  id: number;
  jsonBytes: number;
  wireBytes: number;
  rawBytes: number;
  checksum: Buffer;
}

/** A received frame whose checksum held and whose payload is decompressed. */
export interface Frame {
  type: FrameTypeValue;
  id: number;
  json: unknown;
  payload: Buffer;
}

interface TransportNative {
  compress(buffers: Buffer[], level: number): Promise<Buffer>;
  decompress(buffer: Buffer, originalSize: number): Promise<Buffer>;
  hashBuffers(buffers: Buffer[]): Buffer;
}
export const nb = native as unknown as TransportNative;

export function protocolError(message: string, cause?: unknown): BisyncError {
  return new BisyncError(ErrorCode.PROTOCOL, message, cause === undefined ? undefined : { cause });
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt16LE(MAGIC, 0);
  b.writeUInt8(h.type, 2);
  b.writeUInt8(h.flags, 3);
  b.writeUInt32LE(h.id, 4);
  b.writeUInt32LE(h.jsonBytes, 8);
  b.writeUInt32LE(h.wireBytes, 12);
  b.writeUInt32LE(h.rawBytes, 16);
  b.writeUInt32LE(0, 20);
  h.checksum.copy(b, 24);
  return b;
}

const TYPES = new Set<number>(Object.values(FrameType));

/** Parses and bounds-checks a header; anything odd means the stream is not ours (or is broken). */
export function decodeHeader(b: Buffer): FrameHeader {
  const magic = b.readUInt16LE(0);
  if (magic !== MAGIC) throw protocolError(`bad frame magic 0x${magic.toString(16)} (expected 0x${MAGIC.toString(16)}): not a drbd-bisync peer, or the stream is corrupt`);
  const type = b.readUInt8(2);
  if (!TYPES.has(type)) throw protocolError(`unknown frame type ${type}`);
  const h: FrameHeader = {
    type: type as FrameTypeValue,
    flags: b.readUInt8(3),
    id: b.readUInt32LE(4),
    jsonBytes: b.readUInt32LE(8),
    wireBytes: b.readUInt32LE(12),
    rawBytes: b.readUInt32LE(16),
    checksum: Buffer.from(b.subarray(24, 40)),
  };
  if (h.flags & ~FLAG_ZSTD) throw protocolError(`unknown frame flags 0x${h.flags.toString(16)}`);
  if (h.jsonBytes > MAX_JSON_BYTES) throw protocolError(`frame JSON of ${h.jsonBytes} bytes exceeds the limit of ${MAX_JSON_BYTES}`);
  if (h.wireBytes > MAX_PAYLOAD_BYTES || h.rawBytes > MAX_PAYLOAD_BYTES) throw protocolError(`frame payload of ${Math.max(h.wireBytes, h.rawBytes)} bytes exceeds the limit of ${MAX_PAYLOAD_BYTES}`);
  if (!(h.flags & FLAG_ZSTD) && h.wireBytes !== h.rawBytes) throw protocolError(`uncompressed frame with wire size ${h.wireBytes} != raw size ${h.rawBytes}`);
  return h;
}

/**
 * Splits a byte stream into frames: header, then one buffer for JSON + payload
 * that the chunks are copied into as they arrive (one copy per byte).
 */
export class FrameReader {
  private head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  private header: FrameHeader | null = null;
  private body: Buffer = Buffer.alloc(0);
  private bodyFill = 0;

  constructor(private readonly onFrame: (h: FrameHeader, body: Buffer) => void) {}

  /** Feeds received bytes; throws a protocol error on a malformed header. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.header) {
        const n = Math.min(HEADER_BYTES - this.headFill, chunk.length - pos);
        chunk.copy(this.head, this.headFill, pos, pos + n);
        this.headFill += n;
        pos += n;
        if (this.headFill < HEADER_BYTES) return;
        this.header = decodeHeader(this.head);
        this.body = Buffer.allocUnsafe(this.header.jsonBytes + this.header.wireBytes);
        this.bodyFill = 0;
      } else {
        const n = Math.min(this.body.length - this.bodyFill, chunk.length - pos);
        chunk.copy(this.body, this.bodyFill, pos, pos + n);
        this.bodyFill += n;
        pos += n;
      }
      if (this.header && this.bodyFill === this.body.length) {
        const h = this.header;
        const body = this.body;
        this.header = null;
        this.headFill = 0;
        this.body = Buffer.alloc(0);
        this.onFrame(h, body);
      }
    }
  }
}

/** Extents as little-endian float64 pairs: the binary form requests carry them in. */
export function extentsToBuffer(extents: readonly (readonly [number, number])[]): Buffer {
  const b = Buffer.allocUnsafe(extents.length * 16);
  for (let i = 0; i < extents.length; i++) {
    b.writeDoubleLE(extents[i][0], i * 16);
    b.writeDoubleLE(extents[i][1], i * 16 + 8);
  }
  return b;
}

/** The inverse of extentsToBuffer; refuses anything that is not whole non-negative integers. */
export function extentsFromBuffer(b: Buffer, count: number): Array<[number, number]> {
  if (!Number.isSafeInteger(count) || count < 0 || count * 16 > b.length) throw protocolError(`extent count ${count} does not fit a ${b.length}-byte payload`);
  const out: Array<[number, number]> = new Array(count);
  for (let i = 0; i < count; i++) {
    const off = b.readDoubleLE(i * 16);
    const len = b.readDoubleLE(i * 16 + 8);
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0) throw protocolError(`extent ${i} [${off}, ${len}] is not a pair of non-negative integers`);
    out[i] = [off, len];
  }
  return out;
}

// DRBD generation UUIDs as 16-digit uppercase hex strings (drbdmeta's %016llX).
import { BisyncError, ErrorCode } from '../device/errors';

export function formatUuid(v: bigint): string {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`UUID must be a 64-bit unsigned bigint, got ${String(v)}`);
  return v.toString(16).toUpperCase().padStart(16, '0');
}

/** Accepts 1 to 16 hex digits, with or without 0x. */
export function parseUuid(s: string): bigint {
  if (typeof s !== 'string' || !/^(0x)?[0-9a-f]{1,16}$/i.test(s)) {
    throw new BisyncError(ErrorCode.BAD_METADATA, `UUID must be 1 to 16 hex digits, got ${JSON.stringify(s)}`);
  }
  return BigInt(s.startsWith('0x') || s.startsWith('0X') ? s : `0x${s}`);
}

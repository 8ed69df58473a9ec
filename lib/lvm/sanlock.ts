// sanlock delta-lease records, as oVirt's `ids` LV holds them: one 512-byte
// sector per host (host N in sector N-1), each a leader_record (sanlock
// src/leader.h) in little-endian, checksummed over its first 168 bytes. Every
// live host rewrites its own sector with a new timestamp every few seconds.
import { sanlockCrc } from './crc';

export const DELTA_DISK_MAGIC = 0x12212010;
const DELTA_VERSION_MAJOR = 0x00030000;
const NAME_LEN = 48;
/** Bytes the checksum covers: everything before the checksum field. */
const CHECKSUM_LEN = 168;
/** The leader record fills the first 256 bytes of its sector. */
const RECORD_LEN = 200;

export interface DeltaLease {
  magic: number;
  /** Major version in the high 16 bits (3 for delta leases). */
  version: number;
  flags: number;
  /** Sector size the lockspace was made for (512 or 4096). */
  sectorSize: number;
  numHosts: number;
  maxHosts: number;
  /** owner_id: the host id holding this lease (0 when never acquired). */
  hostId: number;
  /** owner_generation: bumped each time the host id is acquired anew. */
  generation: number;
  lver: number;
  /** space_name: the lockspace (oVirt: the storage domain UUID). */
  lockspace: string;
  /** resource_name: the owning host's name (oVirt: the host UUID). */
  resource: string;
  /** Seconds on the owner's monotonic clock at the last renewal; 0 = released/free. */
  timestamp: number;
  checksum: number;
}

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64LE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(v);
}

function name(b: Buffer, off: number): string {
  const raw = b.subarray(off, off + NAME_LEN);
  const nul = raw.indexOf(0);
  return raw.toString('latin1', 0, nul < 0 ? NAME_LEN : nul);
}

/** The CRC sanlock stores in a leader record (bytes 0..167). */
export function deltaLeaseChecksum(sector: Buffer): number {
  return sanlockCrc(sector, 0, CHECKSUM_LEN);
}

/**
 * Parses one delta-lease sector. Null when the sector is too short, the magic
 * or major version is not a delta lease's, the checksum does not match (a torn
 * or foreign write), or a number does not fit: such a sector cannot be merged
 * by timestamp.
 */
export function parseDeltaLease(sector: Buffer): DeltaLease | null {
  if (sector.length < RECORD_LEN) return null;
  const magic = sector.readUInt32LE(0);
  const version = sector.readUInt32LE(4);
  if (magic !== DELTA_DISK_MAGIC || (version & 0xffff0000) >>> 0 !== DELTA_VERSION_MAJOR) return null;
  const checksum = sector.readUInt32LE(CHECKSUM_LEN);
  if (checksum !== deltaLeaseChecksum(sector)) return null;
  const lease: DeltaLease = {
    magic,
    version,
    flags: sector.readUInt32LE(8),
    sectorSize: sector.readUInt32LE(12),
    numHosts: u64(sector, 16),
    maxHosts: u64(sector, 24),
    hostId: u64(sector, 32),
    generation: u64(sector, 40),
    lver: u64(sector, 48),
    lockspace: name(sector, 56),
    resource: name(sector, 56 + NAME_LEN),
    timestamp: u64(sector, 152),
    checksum,
  };
  const numbers = [lease.numHosts, lease.maxHosts, lease.hostId, lease.generation, lease.lver, lease.timestamp];
  return numbers.some(Number.isNaN) ? null : lease;
}

// LVM2 on a DRBD device: the reader, the comparison of two nodes' VGs, and
// oVirt's sanlock delta-lease records.
export * from './types';
export { readLvm, readLvmVersion, readLvmFromDevice, deviceReader, lvmSource, LvmReader } from './read';
export type { ReadFn, ReadLvmOptions } from './read';
export { lvmCrc, sanlockCrc, LVM_INITIAL_CRC } from './crc';
export { parseConfig } from './text';
export type { ConfigSection, ConfigValue } from './text';
export { compareMetadata, commonVersion, vgChanges, extentConflicts } from './compare';
export type { VersionId } from './compare';
export { parseDeltaLease, deltaLeaseChecksum, DELTA_DISK_MAGIC } from './sanlock';
export type { DeltaLease } from './sanlock';
export { ovirtRole, aliasFromRecord } from './ovirt';

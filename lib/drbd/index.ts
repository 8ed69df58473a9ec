// DRBD meta-data: read and write v08 and v09 as DRBD and drbdmeta do.
export { DrbdMetadata, readMetadataAt } from './metadata';
export type { MetadataLocation, ReadLocation } from './metadata';
export { createMetadata, internalDataSize, UUID_JUST_CREATED } from './create';
export type { CreateMetadataOptions } from './create';
export { formatUuid, parseUuid } from './uuid';
export { MAGIC, MDF, MDF_PEER } from './superblock';
export type { Superblock, PeerSlot } from './superblock';
export { AL_EXTENT_SIZE } from './activity-log';
export * from './types';

// Public API of drbd-bisync as a library.
export { BlockDevice, checkBlockSize } from './device/block-device';
export type { OpenOptions, BulkOptions, HashedBlocks } from './device/block-device';
export { diffDevices, copyExtents, wholeDevice } from './device/compare';
export {
  alignToBlocks,
  batches,
  blocks,
  checkExtent,
  coalesce,
  end,
  fromFlat,
  intersect,
  normalize,
  splitAt,
  subtract,
  toFlat,
  totalBytes,
  union,
} from './device/extent';
export type { Extent } from './device/extent';
export { pipelined } from './device/pipeline';
export type { PipelineOptions } from './device/pipeline';
export { BisyncError, ErrorCode, isSystemError } from './device/errors';
export type { ErrorCodeValue, SystemErrorLike } from './device/errors';

// DRBD meta-data.
export * from './drbd';

// Planning and the bidirectional merge.
export { classify } from './plan/classify';
export type { Classification, GenerationUuids, Verdict } from './plan/classify';
export { plan, planDocument, compareOverlap } from './plan/plan';
export type { Plan, PlanOptions, SideSummary } from './plan/plan';
export { planLvm, selectLvs } from './plan/lvm';
export type { LvDoc, LvmDoc, LvmPlan, LvmResolutions, LvVerdict, LvResolution } from './plan/lvm';
export { LocalEndpoint, openExclusive, openWhenReleased } from './resync/local-endpoint';
export type { LocalEndpointOptions } from './resync/local-endpoint';
export { Merge, merge } from './resync/merge';
export type { ConflictPolicy, MergeOptions, MergeOutcome, MergeProgress, MergeReport, VerifyMode } from './resync/merge';
export { defaultJournalPath } from './resync/journal';
export { archiveMerges, restoreArchive } from './resync/restore';
export type { ArchivedMerge, RestoreOptions, RestoreReport } from './resync/restore';
export { readArchiveIndex } from './resync/archive';
export type { ArchiveEntry, MergeIdentity } from './resync/archive';

// The online merge: the survivor stays Primary; resources from the DRBD configuration; the hand-back.
export { resolveResource, pickVolume } from './drbd/resource';
export type { DrbdResource, ResourceVolume, ResolveOptions } from './drbd/resource';
export { targetCommands, survivorCommands, loadedDrbd, checksumResyncFromLog } from './drbd/handback';
export type { ChecksumResync, DrbdMajor } from './drbd/handback';
export { handBack, checkSurvivor, resourceState, RoleWatch } from './resync/online';
export type { HandbackOptions, HandbackReport } from './resync/online';
export { checkOnlineWrites, dmOpenCounts, dmName } from './resync/online-gate';
export type { OnlineGateOptions } from './resync/online-gate';

// LVM2 physical volumes on the device: VGs, LVs, oVirt roles.
export {
  readLvm,
  readLvmVersion,
  readLvmFromDevice,
  lvmSource,
  LvmReader,
  compareMetadata,
  commonVersion,
  parseDeltaLease,
} from './lvm';
export type {
  LvmView,
  VolumeGroup,
  LogicalVolume,
  OvirtVolume,
  OvirtRole,
  MetadataCopy,
  MetadataArea,
  MetadataComparison,
  PhysicalVolumeLabel,
  SegmentType,
  VgChange,
  LvmSource,
  ReadFn,
  ReadLvmOptions,
  VersionId,
  DeltaLease,
} from './lvm';

// Moving blocks between nodes.
export * from './transport';

// DRBD state from the kernel.
export * from './status';

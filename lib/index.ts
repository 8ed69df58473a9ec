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

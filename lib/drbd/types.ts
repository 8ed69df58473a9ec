// Public shapes of decoded DRBD meta-data. MetadataReport is the JSON contract
// of `drbd-bisync inspect --json` (documented in the README); every UUID is a
// 16-digit uppercase hex string without 0x.
import type { Extent } from '../device/extent';

export type MetadataFormat = 'v08' | 'v09';

/** Where the meta-data lives, as drbdmeta names it. */
export type MetadataPlacement =
  | { kind: 'internal' }
  | { kind: 'flex-external'; metaDevice: string }
  | { kind: 'indexed'; metaDevice: string; index: number };

export interface MetadataFlags {
  consistent: boolean;
  wasUpToDate: boolean;
  primary: boolean;
  connected: boolean;
  fullSync: boolean;
  peerOutdated: boolean;
  crashedPrimary: boolean;
  alClean: boolean;
  alDisabled: boolean;
  /** The raw MDF_* word. */
  raw: number;
}

export interface PeerSlotReport {
  nodeId: number;
  bitmapIndex: number;
  bitmapUuid: string;
  bitmapDagtag: string;
  flags: { connected: boolean; outdated: boolean; fencing: boolean; fullSync: boolean; deviceSeen: boolean; nodeExists: boolean; raw: number };
  bitsSet: number;
  extents?: Extent[];
}

export interface MetadataReport {
  format: MetadataFormat;
  placement: MetadataPlacement;
  /** Byte offset of the superblock on the meta-data device. */
  mdOffset: number;
  mdSizeSectors: number;
  alOffset: number;
  bmOffset: number;
  laSizeSectors: number;
  bytesPerBit: number;
  uuids: { current: string; bitmap: string; history: string[] };
  deviceUuid: string;
  flags: MetadataFlags;
  /** Not unclean: magic v08 (not 84-unclean) and AL clean. */
  clean: boolean;
  bitsSet: number;
  changedBytes: number;
  alExtents: Extent[];
  extents?: Extent[];
  /** v09 only. */
  nodeId?: number;
  maxPeers?: number;
  peers?: PeerSlotReport[];
}

/** A change to write to one node's meta-data (all parts optional). */
export interface MetadataUpdate {
  uuids?: { current?: string; bitmap?: string; history?: string[] };
  /** v09: which peer slot `uuids.bitmap`, `clearBitmap` and `peerFlags` apply to. */
  peerNodeId?: number;
  flags?: Partial<Omit<MetadataFlags, 'raw'>>;
  /** Clear every bit of the bitmap (v09: of the peer's slot, or all slots when peerNodeId is absent). */
  clearBitmap?: boolean;
  /** Set the bits covering these extents (v09: of the peer's slot, or all slots when peerNodeId is absent). */
  setBits?: Extent[];
  /** Clear the bits of the blocks lying wholly inside these extents (same slots as setBits); applied before setBits. */
  clearBits?: Extent[];
  /** Mark the activity log clean (v08: clean magic) and re-initialise it. */
  clean?: boolean;
}

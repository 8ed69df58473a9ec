// What drbd-bisync knows of the LVM2 physical volume on a DRBD device: the
// shared vocabulary of the reader (lib/lvm), the endpoints that carry a node's
// view across the wire, and the plan that attributes changed blocks to VM disks.
//
// Offsets and sizes are bytes on the DRBD device (= bytes of the PV: the PV
// starts at byte 0 of the DRBD data area). Extents are [offset, length].
import type { Extent } from '../device/extent';

/** One committed (or older) copy of the VG metadata text found in a metadata area's ring. */
export interface MetadataCopy {
  seqno: number;
  /** LVM CRC of the text including its trailing NUL, as LVM stores it in raw_locn. */
  checksum: number;
  /** Which metadata area (0 or 1) and the offset of the copy inside it. */
  mda: number;
  offset: number;
  /** Bytes on disk including the trailing NUL. */
  size: number;
  /** `description` of the copy (the LVM command line that wrote it), when present. */
  description: string | null;
  creationHost: string | null;
  creationTime: number | null;
}

export interface MetadataArea {
  /** Byte offset of the mda_header on the device, and the whole area's size. */
  start: number;
  size: number;
  /** RAW_LOCN_IGNORED set on slot 0: the area holds no text. */
  ignored: boolean;
}

export interface PhysicalVolumeLabel {
  /** PV uuid in LVM's hyphenated 6-4-4-4-4-4-6 form. */
  uuid: string;
  /** Sector (0..3) the label was found in. */
  labelSector: number;
  /** device_size_xl from the pv_header. */
  deviceSize: number;
  /** First physical extent, bytes. */
  peStart: number;
  mdas: MetadataArea[];
}

/** The role an LV plays in an oVirt block storage domain (a VG tagged RHAT_storage_domain). */
export type OvirtRole = 'volume' | 'metadata' | 'ids' | 'inbox' | 'outbox' | 'leases' | 'xleases' | 'master';

export interface OvirtVolume {
  role: OvirtRole;
  /** Disk image id (tag IU_<id>), volumes only. */
  image: string | null;
  /** Parent volume id (tag PU_<id>; the blank UUID 00000000-0000-0000-0000-000000000000 means none). */
  parent: string | null;
  /** Metadata slot (tag MD_<n>), volumes only. */
  mdSlot: number | null;
  /** DiskAlias from the volume's metadata slot DESCRIPTION, when readable. */
  alias: string | null;
}

export type SegmentType =
  | 'linear' | 'striped' | 'mirror' | 'raid' | 'snapshot' | 'thin-pool' | 'thin' | 'cache' | 'cache-pool'
  | 'vdo' | 'vdo-pool' | 'error' | 'zero' | 'other';

export interface LogicalVolume {
  name: string;
  /** LV id, hyphenated: the key that matches an LV across nodes (names can change). */
  uuid: string;
  tags: string[];
  status: string[];
  /** Segment types this LV is made of (first segment first). */
  segmentTypes: SegmentType[];
  /** Logical size in bytes (sum of the segments' extent counts); always set by the reader. */
  size?: number;
  /**
   * Byte ranges of this PV holding this LV's data, sorted and coalesced. Sub-LVs
   * (mirror images, raid legs, snapshot COW, pvmove, pool data/metadata) are folded into the
   * top-level LV they serve, so every allocated extent belongs to exactly one entry of `lvs`.
   */
  extents: Extent[];
  /** oVirt role and volume chain, or null when the VG is no oVirt domain. */
  ovirt: OvirtVolume | null;
}

export interface VolumeGroup {
  name: string;
  uuid: string;
  seqno: number;
  /** Extent size in bytes. */
  extentSize: number;
  /** This PV's pe_start as the VG text says, bytes (PE n starts at peStart + n * extentSize); always set by the reader. */
  peStart?: number;
  tags: string[];
  /** Name of this PV in the VG text ("pv0"), its pe_start and pe_count as the VG says. */
  pvName: string;
  peCount: number;
  /** Top-level LVs only (see LogicalVolume.extents). */
  lvs: LogicalVolume[];
  /** The VG is an oVirt block storage domain (tag RHAT_storage_domain). */
  ovirt: boolean;
}

/** One node's LVM view of its DRBD device. */
export interface LvmView {
  pv: PhysicalVolumeLabel;
  /** Byte ranges LVM itself owns: the label sectors (0..4095) and every metadata area. */
  metadataRegion: Extent[];
  committed: MetadataCopy;
  /** Older copies still in the ring, newest (highest seqno) first; the committed copy excluded. */
  history: MetadataCopy[];
  /** The committed VG. */
  vg: VolumeGroup;
  /** Byte ranges of this PV's extents that no LV uses. */
  unallocated: Extent[];
}

/** What one node changed in the VG since the common ancestor. */
export interface VgChange {
  kind: 'created' | 'removed' | 'resized' | 'renamed' | 'retagged';
  lv: string;
  uuid: string;
}

export interface MetadataComparison {
  local: { seqno: number; checksum: number };
  peer: { seqno: number; checksum: number };
  /** Newest version present on both nodes (committed or in a ring), or null when none is. */
  common: { seqno: number; checksum: number } | null;
  changedOn: 'none' | 'local' | 'peer' | 'both';
  changes: { local: VgChange[]; peer: VgChange[] };
  /** [firstPe, count, localOwnerLvName | null, peerOwnerLvName | null], extents the nodes allocate differently. */
  extentConflicts: Array<[number, number, string | null, string | null]>;
}

/**
 * How a node's reader is reached for LVM: the committed view, and any older VG
 * version still in its rings by (seqno, checksum) — the common ancestor of two
 * diverged nodes is in both rings, so each side can parse it from its own device.
 */
export interface LvmSource {
  /** history: false skips the ring scan (an oVirt metadata area is 128 MiB): `history` is then empty. */
  lvm(opts?: { history?: boolean }): Promise<LvmView | null>;
  lvmVersion(seqno: number, checksum: number): Promise<VolumeGroup>;
}

/** device-mapper's name of an active LV: VG and LV joined by '-', each '-' inside a name doubled. */
export const dmName = (vg: string, lv: string): string => `${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;

// What the merge engine needs from one node. LocalEndpoint serves a device on
// this host; RemoteEndpoint reaches a `drbd-bisync serve` agent over TLS-PSK.
// Both implement this interface, so a merge runs the same code either way.
import type { Extent } from '../device/extent';
import type { MetadataReport, MetadataUpdate } from '../drbd/types';
import type { LvmSource, LvmView, VolumeGroup } from '../lvm/types';

export interface EndpointInfo {
  hostname: string;
  path: string;
  size: number;
  logicalSectorSize: number;
  /** The device's DRBD meta-data, or null when it has none (a plain device). */
  metadata: MetadataReport | null;
  /** The size a merge must act on: DRBD's usable size when there is meta-data, else the device size. */
  dataSize: number;
}

export interface BlockHashes {
  digests: Buffer;
  zero: Buffer;
}

export interface Endpoint extends LvmSource {
  info(): Promise<EndpointInfo>;
  /** The blocks this node changed since the split: bitmap, plus AL extents when unclean; whole device when full-sync. */
  changeSet(opts?: { peerNodeId?: number }): Promise<Extent[]>;
  /**
   * Only a live endpoint (the online survivor) has any: the part of changeSet() that comes from
   * hot activity-log extents and not from the on-disk bitmap, so this node may or may not have written it.
   */
  doubtfulChanges?(): Promise<Extent[]>;
  hash(extents: Extent[], blockSize: number): Promise<BlockHashes>;
  read(extents: Extent[]): Promise<Buffer>;
  write(extents: Extent[], data: Buffer): Promise<void>;
  flush(): Promise<void>;
  writeMetadata(update: MetadataUpdate): Promise<MetadataReport>;
  /** The LVM2 PV on the data area (label, committed VG, ring history unless history is false), or null when there is none. */
  lvm(opts?: { history?: boolean }): Promise<LvmView | null>;
  /** An older VG version still in this node's metadata rings (the common ancestor of a split). */
  lvmVersion(seqno: number, checksum: number): Promise<VolumeGroup>;
  /**
   * A hint that block data will move soon: a remote endpoint starts opening its data streams
   * (TLS handshakes) so that they are ready when the plan is. Failures surface at first use.
   */
  prepareTransfer?(): void;
  close(): Promise<void>;
}

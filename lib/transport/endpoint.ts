// What the merge engine needs from one node. LocalEndpoint serves a device on
// this host; RemoteEndpoint reaches a `drbd-bisync serve` agent over TLS-PSK.
// Both implement this interface, so a merge runs the same code either way.
import type { Extent } from '../device/extent';
import type { MetadataReport, MetadataUpdate } from '../drbd/types';

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

export interface Endpoint {
  info(): Promise<EndpointInfo>;
  /** The blocks this node changed since the split: bitmap, plus AL extents when unclean; whole device when full-sync. */
  changeSet(opts?: { peerNodeId?: number }): Promise<Extent[]>;
  hash(extents: Extent[], blockSize: number): Promise<BlockHashes>;
  read(extents: Extent[]): Promise<Buffer>;
  write(extents: Extent[], data: Buffer): Promise<void>;
  flush(): Promise<void>;
  writeMetadata(update: MetadataUpdate): Promise<MetadataReport>;
  close(): Promise<void>;
}

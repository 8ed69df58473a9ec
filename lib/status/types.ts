// The status document: what `drbd-bisync status --json` prints and getStatus()
// returns. Documented in the README. State names are DRBD's own
// strings ("StandAlone", "UpToDate", ...), identical across sources.

/** Where the answer came from: the kernel over generic netlink, /proc/drbd (8.4), or `drbdsetup events2` (9). */
export type StatusSource = 'netlink' | 'proc' | 'events2';

export interface SyncProgress {
  /** Done, 0..100, one decimal like /proc/drbd. */
  percent: number;
  /** Still to transfer. */
  remainingBytes: number;
  /** What this resync started with, when the source says. */
  totalBytes?: number;
  /** Estimated seconds left, when the source says. */
  etaSeconds?: number;
}

export interface Uuids {
  /** 16-digit uppercase hex, as drbdmeta get-gi prints them. */
  current: string;
  bitmap: string;
  history: string[];
}

export interface PeerVolumeStatus {
  volume: number;
  /** DRBD 9 replication state name; derived from the 8.4 connection state ("Off" when not connected). */
  replication: string;
  peerDisk: string;
  outOfSyncBytes: number;
  syncProgress?: SyncProgress;
  /** This node's bitmap UUID toward the peer (netlink). */
  bitmapUuid?: string;
}

export interface PeerStatus {
  /** Connection name (DRBD 9) or the peer's address (8.4 netlink), when known. */
  name?: string;
  nodeId?: number;
  /** DRBD 8.4 style connection state: the replication state while connected ("SyncSource"), else the connection state. */
  connection: string;
  role: string;
  volumes: PeerVolumeStatus[];
}

export interface VolumeStatus {
  volume: number;
  minor: number;
  disk: string;
  /** Generation UUIDs of the local disk (netlink only). */
  uuids?: Uuids;
  /** Capacity in bytes, when known. */
  sizeBytes?: number;
  /** The backing (lower) device, when the source names it. */
  backingDevice?: string;
}

export interface ResourceStatus {
  name: string;
  /** Minor of the first volume (the usual single-volume case). */
  minor: number;
  minors: number[];
  role: string;
  /** Summary of the first peer and first volume, for the usual two-node resource. */
  peerRole: string;
  connection: string;
  disk: string;
  peerDisk: string;
  /** Blocks marked out of sync toward the first peer, over all volumes. */
  outOfSyncBytes: number;
  syncProgress?: SyncProgress;
  uuids?: Uuids;
  /** StandAlone after DRBD detected a split brain and dropped the connection. */
  splitBrain: boolean;
  /** What showed the split brain: "kernel-log" (a Split-Brain line newer than the last reconnect) or "helper" (a split-brain handler event). */
  splitBrainEvidence?: 'kernel-log' | 'helper';
  volumes: VolumeStatus[];
  peers: PeerStatus[];
}

export interface DrbdStatus {
  source: StatusSource;
  /** Module version ("8.4.11") when the source shows it. */
  version?: string;
  /** Generic netlink family version: 1 for DRBD 8.4, 2 for DRBD 9. */
  api?: number;
  /** Why an earlier source was not used (the fallback chain). */
  fallbackReasons?: string[];
  resources: ResourceStatus[];
}

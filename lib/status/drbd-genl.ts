// DRBD's generic netlink family "drbd": the attribute tables and state enums
// (linux/drbd_genl.h, linux/drbd.h; 8.4 = family version 1, 9 = version 2),
// the status requests, and decoding into the status document.
import { GenlFamily, GenlMessage, GenlSocket, GenlOpFlags, FamilyNotFoundError, encodeNested, encodeString, forEachAttr, resolveFamily } from './genl';
import type { PeerStatus, PeerVolumeStatus, ResourceStatus, SyncProgress, Uuids, VolumeStatus } from './types';

/** genlmsghdr.cmd values. */
export const DrbdCmd = {
  EVENT: 1, // 8.4 notification (state_info)
  GET_STATUS: 2, // 8.4 only
  GET_RESOURCES: 30,
  GET_DEVICES: 31,
  GET_CONNECTIONS: 32,
  GET_PEER_DEVICES: 33,
  RESOURCE_STATE: 34,
  DEVICE_STATE: 35,
  CONNECTION_STATE: 36,
  PEER_DEVICE_STATE: 37,
  GET_INITIAL_STATE: 38,
  HELPER: 40,
  INITIAL_STATE_DONE: 41,
  PATH_STATE: 48,
} as const;

/** Top-level attributes (each a nested struct). */
const TLA = {
  CFG_CONTEXT: 2,
  DISK_CONF: 3,
  STATE_INFO: 8,
  RESOURCE_INFO: 15,
  DEVICE_INFO: 16,
  CONNECTION_INFO: 17,
  PEER_DEVICE_INFO: 18,
  RESOURCE_STATISTICS: 19,
  DEVICE_STATISTICS: 20,
  CONNECTION_STATISTICS: 21,
  PEER_DEVICE_STATISTICS: 22,
  NOTIFICATION_HEADER: 23,
  HELPER: 24,
} as const;

type Kind = 'u32' | 's32' | 'u64' | 'str' | 'bin' | 'flag';
type Table = Record<number, readonly [string, Kind]>;
export type Fields = Record<string, number | bigint | string | Buffer | boolean>;

/** Field tables per struct. Tag numbers are per struct; tags not listed are skipped. */
const TABLES: Record<number, Table> = {
  [TLA.CFG_CONTEXT]: { 1: ['ctx_volume', 'u32'], 2: ['ctx_resource_name', 'str'], 3: ['ctx_my_addr', 'bin'], 4: ['ctx_peer_addr', 'bin'], 5: ['ctx_conn_name', 'str'], 6: ['ctx_peer_node_id', 'u32'] },
  [TLA.DISK_CONF]: { 1: ['backing_dev', 'str'], 2: ['meta_dev', 'str'], 3: ['meta_dev_idx', 's32'] },
  [TLA.STATE_INFO]: {
    1: ['sib_reason', 'u32'], 2: ['current_state', 'u32'], 3: ['capacity', 'u64'], 4: ['ed_uuid', 'u64'], 5: ['prev_state', 'u32'], 6: ['new_state', 'u32'],
    7: ['uuids', 'bin'], 8: ['disk_flags', 'u32'], 9: ['bits_total', 'u64'], 10: ['bits_oos', 'u64'], 11: ['bits_rs_total', 'u64'], 12: ['bits_rs_failed', 'u64'],
    13: ['helper', 'str'], 14: ['helper_exit_code', 'u32'],
    15: ['send_cnt', 'u64'], 16: ['recv_cnt', 'u64'], 17: ['read_cnt', 'u64'], 18: ['writ_cnt', 'u64'], 19: ['al_writ_cnt', 'u64'], 20: ['bm_writ_cnt', 'u64'],
    21: ['ap_bio_cnt', 'u32'], 22: ['ap_pending_cnt', 'u32'], 23: ['rs_pending_cnt', 'u32'],
  },
  [TLA.RESOURCE_INFO]: { 1: ['res_role', 'u32'], 2: ['res_susp', 'flag'], 3: ['res_susp_nod', 'flag'], 4: ['res_susp_fen', 'flag'] },
  [TLA.DEVICE_INFO]: { 1: ['dev_disk_state', 'u32'], 4: ['backing_dev_path', 'str'] },
  [TLA.CONNECTION_INFO]: { 1: ['conn_connection_state', 'u32'], 2: ['conn_role', 'u32'] },
  [TLA.PEER_DEVICE_INFO]: { 1: ['peer_repl_state', 'u32'], 2: ['peer_disk_state', 'u32'], 3: ['peer_resync_susp_user', 'u32'], 4: ['peer_resync_susp_peer', 'u32'], 5: ['peer_resync_susp_dependency', 'u32'] },
  [TLA.DEVICE_STATISTICS]: { 1: ['dev_size', 'u64'], 11: ['dev_exposed_data_uuid', 'u64'], 12: ['dev_current_uuid', 'u64'], 13: ['dev_disk_flags', 'u32'], 14: ['history_uuids', 'bin'] },
  [TLA.PEER_DEVICE_STATISTICS]: {
    1: ['peer_dev_received', 'u64'], 2: ['peer_dev_sent', 'u64'], 5: ['peer_dev_out_of_sync', 'u64'], 6: ['peer_dev_resync_failed', 'u64'], 7: ['peer_dev_bitmap_uuid', 'u64'],
    9: ['peer_dev_flags', 'u32'], 10: ['peer_dev_rs_total', 'u64'], 14: ['peer_dev_ov_left', 'u64'],
  },
  [TLA.NOTIFICATION_HEADER]: { 1: ['nh_type', 'u32'] },
  [TLA.HELPER]: { 1: ['helper_name', 'str'], 2: ['helper_status', 'u32'] },
};

function decodeStruct(tla: number, buf: Buffer, start: number, end: number): Fields {
  const table = TABLES[tla] ?? {};
  const out: Fields = {};
  forEachAttr(buf, start, end, (type, from, to) => {
    const field = table[type];
    if (!field) return;
    const [name, kind] = field;
    out[name] =
      kind === 'u32' ? buf.readUInt32LE(from)
        : kind === 's32' ? buf.readInt32LE(from)
        : kind === 'u64' ? buf.readBigUInt64LE(from)
        : kind === 'str' ? cString(buf, from, to)
        : kind === 'flag' ? (to > from ? buf[from] !== 0 : true)
        : buf.subarray(from, to);
  });
  return out;
}

function cString(buf: Buffer, from: number, to: number): string {
  const nul = buf.indexOf(0, from);
  return buf.toString('utf8', from, nul >= 0 && nul < to ? nul : to);
}

/** One DRBD message: its fixed header and its structs by name. */
export interface DrbdMessage {
  cmd: number;
  minor: number;
  retCode: number;
  structs: Partial<Record<keyof typeof TLA, Fields>>;
}

const TLA_NAMES = Object.fromEntries(Object.entries(TLA).map(([k, v]) => [v, k])) as Record<number, keyof typeof TLA>;

export function decodeDrbdMessage(msg: GenlMessage): DrbdMessage {
  if (msg.payload.length < 8) throw new RangeError(`drbd netlink message of ${msg.payload.length} bytes is shorter than its 8-byte header`);
  const structs: DrbdMessage['structs'] = {};
  const p = msg.payload;
  forEachAttr(p, 8, p.length, (type, from, to) => {
    const name = TLA_NAMES[type];
    if (name) structs[name] = decodeStruct(type, p, from, to);
  });
  return { cmd: msg.cmd, minor: msg.payload.readUInt32LE(0), retCode: msg.payload.readInt32LE(4), structs };
}

// ---- state enums (names as DRBD prints them) ----
export const ROLES = ['Unknown', 'Primary', 'Secondary'];
const DISK_84 = ['Diskless', 'Attaching', 'Failed', 'Negotiating', 'Inconsistent', 'Outdated', 'DUnknown', 'Consistent', 'UpToDate'];
const DISK_9 = ['Diskless', 'Attaching', 'Detaching', 'Failed', 'Negotiating', 'Inconsistent', 'Outdated', 'DUnknown', 'Consistent', 'UpToDate'];
/** 8.4 enum drbd_conns; DRBD 9 numbers its replication states the same from 10 (L_ESTABLISHED) on. */
export const CONNS_84 = [
  'StandAlone', 'Disconnecting', 'Unconnected', 'Timeout', 'BrokenPipe', 'NetworkFailure', 'ProtocolError', 'TearDown', 'WFConnection', 'WFReportParams',
  'Connected', 'StartingSyncS', 'StartingSyncT', 'WFBitMapS', 'WFBitMapT', 'WFSyncUUID', 'SyncSource', 'SyncTarget', 'VerifyS', 'VerifyT',
  'PausedSyncS', 'PausedSyncT', 'Ahead', 'Behind',
];
const CONN_9 = ['StandAlone', 'Disconnecting', 'Unconnected', 'Timeout', 'BrokenPipe', 'NetworkFailure', 'ProtocolError', 'TearDown', 'Connecting', 'Connected'];
const REPL_9: Record<number, string> = { 9: 'Off', 10: 'Established', ...Object.fromEntries(CONNS_84.slice(11).map((n, i) => [i + 11, n])) };

const name = (list: readonly string[] | Record<number, string>, v: number | undefined, what: string): string =>
  v === undefined ? 'Unknown' : ((list as Record<number, string>)[v] ?? `${what}(${v})`);

export const diskName = (api: number, v: number | undefined): string => name(api >= 2 ? DISK_9 : DISK_84, v, 'disk');
export const roleName = (v: number | undefined): string => name(ROLES, v, 'role');

/** 8.4 connection state → DRBD 9 replication state. */
export function replicationOf84(cs: string): string {
  const i = CONNS_84.indexOf(cs);
  if (i < 10) return 'Off';
  return cs === 'Connected' ? 'Established' : cs;
}

/** DRBD 9 connection + replication → the 8.4 style single state (an 8.4 kernel, api 1, says WFConnection for Connecting). */
export function connectionOf9(conn: string, repl: string | undefined, api = 2): string {
  if (conn === 'Connecting' && api < 2) return 'WFConnection';
  if (conn !== 'Connected') return conn;
  return !repl || repl === 'Established' || repl === 'Off' ? 'Connected' : repl;
}

/** The 8.4 `union drbd_state` word (little-endian bitfields). */
export function decodeState84(w: number): { role: string; peer: string; conn: string; disk: string; pdsk: string; susp: boolean } {
  return {
    role: roleName(w & 3),
    peer: roleName((w >>> 2) & 3),
    conn: name(CONNS_84, (w >>> 4) & 31, 'conn'),
    disk: diskName(1, (w >>> 9) & 15),
    pdsk: diskName(1, (w >>> 13) & 15),
    susp: ((w >>> 17) & 1) === 1,
  };
}

export const hexUuid = (v: bigint): string => v.toString(16).toUpperCase().padStart(16, '0');
function uuidsFromArray(words: bigint[]): Uuids {
  return { current: hexUuid(words[0] ?? 0n), bitmap: hexUuid(words[1] ?? 0n), history: words.slice(2).map(hexUuid) };
}
function u64s(b: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let off = 0; off + 8 <= b.length; off += 8) out.push(b.readBigUInt64LE(off));
  return out;
}

const SYNC_STATES = new Set(['SyncSource', 'SyncTarget', 'PausedSyncS', 'PausedSyncT']);

/**
 * Progress exactly as /proc/drbd prints it (drbd_get_syncer_progress): per
 * mille done from 4 KiB bit counts shifted right by 10, so it moves in steps.
 */
export function progressOf(totalBits: number, leftBits: number): SyncProgress {
  const left = Math.min(leftBits, totalBits);
  const shift = totalBits > 0xffffffff ? 16 : 10;
  const perMille = totalBits === 0 ? 1000 : 1000 - Math.floor((Math.floor(left / 2 ** shift) * 1000) / (1 + Math.floor(totalBits / 2 ** shift)));
  return { percent: perMille / 10, remainingBytes: left * 4096, totalBytes: totalBits * 4096 };
}

// ---- family resolution and requests ----
export interface DrbdFamily extends GenlFamily {
  /** The module has GET_RESOURCES..GET_PEER_DEVICES dumps (8.4.6+, 9). */
  hasObjectDumps: boolean;
  /** The module has the 8.4 GET_STATUS dump. */
  hasGetStatus: boolean;
  eventsGroup?: number;
}

const hasDump = (f: GenlFamily, op: number): boolean => f.ops.some((o) => o.id === op && (o.flags & GenlOpFlags.DUMP) !== 0);

/** Resolves "drbd"; a missing family means the kernel module is not loaded. */
export async function resolveDrbdFamily(sock?: GenlSocket): Promise<DrbdFamily> {
  let f: GenlFamily;
  try {
    f = await resolveFamily('drbd', sock);
  } catch (e) {
    if (e instanceof FamilyNotFoundError) {
      throw new FamilyNotFoundError('drbd', "ENOENT: the drbd kernel module is not loaded (no generic netlink family 'drbd')", 'load it with `modprobe drbd` (and bring the resource up with `drbdadm up RESOURCE`)');
    }
    throw e;
  }
  return {
    ...f,
    hasObjectDumps: [DrbdCmd.GET_RESOURCES, DrbdCmd.GET_DEVICES, DrbdCmd.GET_CONNECTIONS, DrbdCmd.GET_PEER_DEVICES].every((op) => hasDump(f, op)),
    hasGetStatus: hasDump(f, DrbdCmd.GET_STATUS),
    eventsGroup: f.groups.find((g) => g.name === 'events')?.id,
  };
}

/** The drbd_genlmsghdr (minor, flags) and an optional resource filter. */
export function drbdRequestPayload(resource?: string, minor = 0xffffffff): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(minor >>> 0, 0);
  return resource ? Buffer.concat([hdr, encodeNested(TLA.CFG_CONTEXT, [encodeString(2, resource)])]) : hdr;
}

export async function drbdDump(sock: GenlSocket, fam: DrbdFamily, cmd: number, resource?: string): Promise<DrbdMessage[]> {
  const replies = await sock.request(fam.id, cmd, fam.version, drbdRequestPayload(resource), { dump: true });
  return replies.map(decodeDrbdMessage).filter((m) => m.structs.CFG_CONTEXT?.ctx_resource_name !== undefined);
}

// ---- building the status document ----
const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : 0);

/** 8.4 GET_STATUS: one message per minor with the state word, UUIDs and bitmap counters. */
export function resourcesFromGetStatus(msgs: DrbdMessage[]): ResourceStatus[] {
  const byName = new Map<string, ResourceStatus>();
  for (const m of [...msgs].sort((a, b) => a.minor - b.minor)) {
    const ctx = m.structs.CFG_CONTEXT!;
    const si = m.structs.STATE_INFO ?? {};
    const st = decodeState84(num(si.current_state));
    const res = getOrCreate(byName, String(ctx.ctx_resource_name));
    const volume = num(ctx.ctx_volume);
    const vol: VolumeStatus = { volume, minor: m.minor, disk: st.disk };
    if (si.uuids instanceof Buffer && si.uuids.length >= 32) vol.uuids = uuidsFromArray(u64s(si.uuids));
    if (si.capacity !== undefined) vol.sizeBytes = num(si.capacity) * 512;
    const backing = m.structs.DISK_CONF?.backing_dev;
    if (typeof backing === 'string' && backing) vol.backingDevice = backing;
    res.volumes.push(vol);
    res.role = st.role;
    const peer = firstPeer(res, st.conn, st.peer);
    const oos = num(si.bits_oos) * 4096;
    const pv: PeerVolumeStatus = { volume, replication: replicationOf84(st.conn), peerDisk: st.pdsk, outOfSyncBytes: oos };
    if (SYNC_STATES.has(st.conn) && si.bits_rs_total !== undefined) {
      pv.syncProgress = progressOf(num(si.bits_rs_total), Math.max(0, num(si.bits_oos) - num(si.bits_rs_failed)));
    }
    peer.volumes.push(pv);
  }
  return [...byName.values()].map(summarize);
}

/** The object dumps (8.4.6+ and 9): resources, devices, connections, peer devices. */
export function resourcesFromObjects(
  api: number,
  dumps: { resources: DrbdMessage[]; devices: DrbdMessage[]; connections: DrbdMessage[]; peerDevices: DrbdMessage[] },
): ResourceStatus[] {
  const byName = new Map<string, ResourceStatus>();
  const resName = (m: DrbdMessage): string => String(m.structs.CFG_CONTEXT!.ctx_resource_name);
  for (const m of dumps.resources) getOrCreate(byName, resName(m)).role = roleName(num(m.structs.RESOURCE_INFO?.res_role));
  for (const m of [...dumps.devices].sort((a, b) => a.minor - b.minor)) {
    const ds = m.structs.DEVICE_STATISTICS ?? {};
    const vol: VolumeStatus = { volume: num(m.structs.CFG_CONTEXT!.ctx_volume), minor: m.minor, disk: diskName(api, num(m.structs.DEVICE_INFO?.dev_disk_state)) };
    if (ds.dev_size !== undefined) vol.sizeBytes = num(ds.dev_size) * 512;
    const backing = m.structs.DEVICE_INFO?.backing_dev_path;
    if (typeof backing === 'string' && backing) vol.backingDevice = backing;
    if (ds.dev_current_uuid !== undefined) {
      vol.uuids = { current: hexUuid(ds.dev_current_uuid as bigint), bitmap: hexUuid(0n), history: ds.history_uuids instanceof Buffer ? u64s(ds.history_uuids).map(hexUuid) : [] };
    }
    getOrCreate(byName, resName(m)).volumes.push(vol);
  }
  const peerKey = (m: DrbdMessage): string => `${resName(m)}\0${m.structs.CFG_CONTEXT!.ctx_peer_node_id ?? ''}\0${m.structs.CFG_CONTEXT!.ctx_conn_name ?? ''}`;
  const peers = new Map<string, { conn: string; role: string; peer: PeerStatus }>();
  for (const m of dumps.connections) {
    const ctx = m.structs.CFG_CONTEXT!;
    const ci = m.structs.CONNECTION_INFO ?? {};
    // The object dumps use DRBD 9's connection and replication enums on 8.4 kernels too (only disk states differ).
    const conn = name(CONN_9, num(ci.conn_connection_state), 'conn');
    const peer: PeerStatus = { connection: connectionOf9(conn, undefined, api), role: roleName(num(ci.conn_role)), volumes: [] };
    if (typeof ctx.ctx_conn_name === 'string' && ctx.ctx_conn_name) peer.name = ctx.ctx_conn_name;
    if (ctx.ctx_peer_node_id !== undefined) peer.nodeId = num(ctx.ctx_peer_node_id);
    peers.set(peerKey(m), { conn, role: peer.role, peer });
    getOrCreate(byName, resName(m)).peers.push(peer);
  }
  for (const m of dumps.peerDevices) {
    const pi = m.structs.PEER_DEVICE_INFO ?? {};
    const ps = m.structs.PEER_DEVICE_STATISTICS ?? {};
    const replNum = num(pi.peer_repl_state);
    let entry = peers.get(peerKey(m));
    if (!entry) {
      const peer: PeerStatus = { connection: 'StandAlone', role: 'Unknown', volumes: [] };
      entry = { conn: peer.connection, role: peer.role, peer };
      peers.set(peerKey(m), entry);
      getOrCreate(byName, resName(m)).peers.push(peer);
    }
    const repl = name(REPL_9, replNum, 'repl');
    const oos = num(ps.peer_dev_out_of_sync) * 512;
    const pv: PeerVolumeStatus = { volume: num(m.structs.CFG_CONTEXT!.ctx_volume), replication: repl, peerDisk: diskName(api, num(pi.peer_disk_state)), outOfSyncBytes: oos };
    if (ps.peer_dev_bitmap_uuid !== undefined) pv.bitmapUuid = hexUuid(ps.peer_dev_bitmap_uuid as bigint);
    if (SYNC_STATES.has(repl) && ps.peer_dev_rs_total !== undefined) {
      pv.syncProgress = progressOf(num(ps.peer_dev_rs_total) / 8, Math.max(0, num(ps.peer_dev_out_of_sync) - num(ps.peer_dev_resync_failed)) / 8);
    }
    entry.peer.volumes.push(pv);
    entry.peer.connection = connectionOf9(entry.conn, repl, api);
  }
  for (const r of byName.values()) {
    for (const v of r.volumes) {
      const bm = r.peers[0]?.volumes.find((pv) => pv.volume === v.volume)?.bitmapUuid;
      if (v.uuids && bm) v.uuids.bitmap = bm;
    }
  }
  return [...byName.values()].map(summarize);
}

function getOrCreate(map: Map<string, ResourceStatus>, resName: string): ResourceStatus {
  let r = map.get(resName);
  if (!r) {
    r = { name: resName, minor: -1, minors: [], role: 'Unknown', peerRole: 'Unknown', connection: 'StandAlone', disk: 'Diskless', peerDisk: 'DUnknown', outOfSyncBytes: 0, splitBrain: false, volumes: [], peers: [] };
    map.set(resName, r);
  }
  return r;
}

/** 8.4 has exactly one peer per resource; its state comes with every minor. */
function firstPeer(res: ResourceStatus, conn: string, role: string): PeerStatus {
  if (!res.peers.length) res.peers.push({ connection: conn, role, volumes: [] });
  return res.peers[0];
}

/** Fills the resource-level summary from the first volume and the first peer. */
export function summarize(r: ResourceStatus): ResourceStatus {
  r.volumes.sort((a, b) => a.volume - b.volume);
  r.minors = r.volumes.map((v) => v.minor);
  r.minor = r.minors[0] ?? -1;
  const v0 = r.volumes[0];
  if (v0) r.disk = v0.disk;
  if (v0?.uuids) r.uuids = v0.uuids;
  const p = r.peers[0];
  if (p) {
    r.connection = p.connection;
    r.peerRole = p.role;
    p.volumes.sort((a, b) => a.volume - b.volume);
    r.peerDisk = p.volumes[0]?.peerDisk ?? 'DUnknown';
    r.outOfSyncBytes = p.volumes.reduce((s, pv) => s + pv.outOfSyncBytes, 0);
    const sp = p.volumes.find((pv) => pv.syncProgress)?.syncProgress;
    if (sp) r.syncProgress = sp;
    else delete r.syncProgress;
  }
  return r;
}

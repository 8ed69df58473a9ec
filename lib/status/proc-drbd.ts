// /proc/drbd (DRBD 8.4; drbd_proc.c): one block per configured minor. It has
// no resource names, so callers map minors to names (see minorNames()).
import { replicationOf84, summarize } from './drbd-genl';
import type { ResourceStatus, SyncProgress } from './types';

export interface ProcDevice {
  minor: number;
  connection: string;
  role: string;
  peerRole: string;
  disk: string;
  peerDisk: string;
  /** A, B or C; absent while no network configuration exists. */
  protocol?: string;
  ioFlags?: string;
  outOfSyncBytes: number;
  syncProgress?: SyncProgress;
  /** "sync" or "verify" when a progress block follows. */
  progressKind?: 'sync' | 'verify';
}

export interface ProcDrbd {
  version?: string;
  api?: number;
  devices: ProcDevice[];
}

const VERSION = /^version:\s+(\S+)\s+\(api:(\d+)\//;
const DEVICE = /^\s*(\d+):\s+cs:(\S+)(?:\s+ro:([^/\s]+)\/(\S+)\s+ds:([^/\s]+)\/(\S+)(?:\s+([ABC]))?\s+(\S+))?/;
const OOS = /\boos:(\d+)/;
const PROGRESS = /(sync'ed|verified):\s*([\d.]+)%\s+\((\d+)\/(\d+)\)([KM])/;
const FINISH = /finish:\s+(\d+):(\d+):(\d+)/;

export function parseProcDrbd(text: string): ProcDrbd {
  const out: ProcDrbd = { devices: [] };
  let cur: ProcDevice | undefined;
  for (const line of text.split('\n')) {
    const v = VERSION.exec(line);
    if (v) {
      out.version = v[1];
      out.api = Number(v[2]);
      continue;
    }
    const d = DEVICE.exec(line);
    if (d) {
      cur = undefined;
      if (d[2] === 'Unconfigured') continue;
      cur = {
        minor: Number(d[1]),
        connection: d[2],
        role: d[3] ?? 'Unknown',
        peerRole: d[4] ?? 'Unknown',
        disk: d[5] ?? 'Diskless',
        peerDisk: d[6] ?? 'DUnknown',
        outOfSyncBytes: 0,
      };
      if (d[7]) cur.protocol = d[7];
      if (d[8]) cur.ioFlags = d[8];
      out.devices.push(cur);
      continue;
    }
    if (!cur) continue;
    const o = OOS.exec(line);
    if (o) cur.outOfSyncBytes = Number(o[1]) * 1024;
    const p = PROGRESS.exec(line);
    if (p) {
      const unit = p[5] === 'M' ? 1024 * 1024 : 1024;
      cur.progressKind = p[1] === 'verified' ? 'verify' : 'sync';
      cur.syncProgress = { percent: Number(p[2]), remainingBytes: Number(p[3]) * unit, totalBytes: Number(p[4]) * unit };
    }
    const f = FINISH.exec(line);
    if (f && cur.syncProgress) cur.syncProgress.etaSeconds = Number(f[1]) * 3600 + Number(f[2]) * 60 + Number(f[3]);
  }
  return out;
}

/**
 * Groups minors into resources. `names` maps minor → [resource, volume]; an
 * unmapped minor becomes its own resource "minor-N" (8.4 cannot say more).
 */
export function resourcesFromProc(proc: ProcDrbd, names: Map<number, [string, number]> = new Map()): ResourceStatus[] {
  const byName = new Map<string, ResourceStatus>();
  for (const d of proc.devices) {
    const [resName, volume] = names.get(d.minor) ?? [`minor-${d.minor}`, 0];
    let r = byName.get(resName);
    if (!r) {
      r = {
        name: resName, minor: d.minor, minors: [], role: d.role, peerRole: d.peerRole, connection: d.connection, disk: d.disk, peerDisk: d.peerDisk,
        outOfSyncBytes: 0, splitBrain: false, volumes: [], peers: [{ connection: d.connection, role: d.peerRole, volumes: [] }],
      };
      byName.set(resName, r);
    }
    r.volumes.push({ volume, minor: d.minor, disk: d.disk });
    const pv = { volume, replication: replicationOf84(d.connection), peerDisk: d.peerDisk, outOfSyncBytes: d.outOfSyncBytes, ...(d.progressKind === 'sync' && d.syncProgress ? { syncProgress: d.syncProgress } : {}) };
    r.peers[0].volumes.push(pv);
  }
  return [...byName.values()].map(summarize);
}

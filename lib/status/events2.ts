// `drbdsetup events2` (DRBD 9, and 8.4 user space on 8.4.6+ kernels): lines
// "<exists|create|change|destroy|call|response> <object> key:value ...".
// EventsState applies them in order; resources() renders the status document.
import { connectionOf9, summarize } from './drbd-genl';
import type { PeerStatus, PeerVolumeStatus, ResourceStatus } from './types';

export interface Events2Line {
  /** Timestamp when printed with --timestamps. */
  time?: string;
  action: 'exists' | 'create' | 'change' | 'destroy' | 'call' | 'response';
  object: string;
  fields: Record<string, string>;
}

const ACTIONS = new Set(['exists', 'create', 'change', 'destroy', 'call', 'response']);

/** One line; undefined for blank lines and for the "exists -" end-of-dump marker. */
export function parseEvents2Line(line: string): Events2Line | undefined {
  const words = line.trim().split(/\s+/).filter(Boolean);
  if (!words.length || words[0].startsWith('#')) return undefined;
  let time: string | undefined;
  if (!ACTIONS.has(words[0]) && /^\d{4}-\d\d-\d\dT/.test(words[0])) time = words.shift();
  const [action, object, ...rest] = words;
  if (!ACTIONS.has(action)) throw new SyntaxError(`events2: unknown action '${action}' in line '${line.trim()}'`);
  if (object === '-' || object === undefined) return undefined;
  const fields: Record<string, string> = {};
  for (const kv of rest) {
    const i = kv.indexOf(':');
    if (i > 0) fields[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { ...(time ? { time } : {}), action: action as Events2Line['action'], object, fields };
}

type Obj = Record<string, string>;
const num = (v: string | undefined): number => (v === undefined || v === '' ? 0 : Number(v));

/** The current objects as events2 described them, plus split-brain helper calls seen. */
export class EventsState {
  private readonly objects = new Map<string, Obj>();
  /** api 1: an 8.4 kernel, whose /proc/drbd says WFConnection where events2 says Connecting. */
  constructor(private readonly api = 2) {}
  /** Resources whose split-brain handler was called (cleared when they connect again). */
  readonly splitBrainHelper = new Set<string>();

  /** Applies one line; returns the resource name it touched. */
  apply(ev: Events2Line): string | undefined {
    const f = ev.fields;
    const resName = f.name;
    if (!resName) return undefined;
    if (ev.object === 'helper') {
      if (ev.action === 'call' && /^(initial-)?split-brain$/.test(f.helper ?? '')) this.splitBrainHelper.add(resName);
      return resName;
    }
    const key = [ev.object, resName, f['peer-node-id'] ?? f['conn-name'] ?? '', f.volume ?? ''].join('\0');
    if (ev.action === 'destroy') this.objects.delete(key);
    else this.objects.set(key, { ...(this.objects.get(key) ?? {}), ...f, '@object': ev.object });
    if (ev.object === 'connection' && f.connection === 'Connected') this.splitBrainHelper.delete(resName);
    return resName;
  }

  resources(): ResourceStatus[] {
    const byName = new Map<string, ResourceStatus>();
    const res = (n: string): ResourceStatus => {
      let r = byName.get(n);
      if (!r) {
        r = { name: n, minor: -1, minors: [], role: 'Unknown', peerRole: 'Unknown', connection: 'StandAlone', disk: 'Diskless', peerDisk: 'DUnknown', outOfSyncBytes: 0, splitBrain: false, volumes: [], peers: [] };
        byName.set(n, r);
      }
      return r;
    };
    const objs = [...this.objects.values()];
    const peers = new Map<string, { conn: string; peer: PeerStatus }>();
    const peerId = (o: Obj): string => `${o.name}\0${o['peer-node-id'] ?? o['conn-name'] ?? ''}`;
    for (const o of objs.filter((x) => x['@object'] === 'resource')) res(o.name).role = o.role ?? 'Unknown';
    for (const o of objs.filter((x) => x['@object'] === 'device')) {
      res(o.name).volumes.push({
        volume: num(o.volume), minor: num(o.minor), disk: o.disk ?? 'Diskless',
        ...(o.size ? { sizeBytes: num(o.size) * 1024 } : {}),
        ...(o.backing_dev && o.backing_dev !== 'none' ? { backingDevice: o.backing_dev } : {}),
      });
    }
    for (const o of objs.filter((x) => x['@object'] === 'connection')) {
      const peer: PeerStatus = { connection: connectionOf9(o.connection ?? 'StandAlone', undefined, this.api), role: o.role ?? 'Unknown', volumes: [] };
      if (o['conn-name']) peer.name = o['conn-name'];
      if (o['peer-node-id'] !== undefined) peer.nodeId = num(o['peer-node-id']);
      peers.set(peerId(o), { conn: peer.connection, peer });
      res(o.name).peers.push(peer);
    }
    for (const o of objs.filter((x) => x['@object'] === 'peer-device')) {
      const entry = peers.get(peerId(o));
      if (!entry) continue;
      const repl = o.replication ?? 'Off';
      // out-of-sync is in KiB; "done" is present only while resync/verify runs.
      const pv: PeerVolumeStatus = { volume: num(o.volume), replication: repl, peerDisk: o['peer-disk'] ?? 'DUnknown', outOfSyncBytes: num(o['out-of-sync']) * 1024 };
      if (o.done !== undefined && /Sync/.test(repl)) {
        pv.syncProgress = { percent: Math.floor(Number(o.done) * 10) / 10, remainingBytes: pv.outOfSyncBytes, ...(o.eta !== undefined ? { etaSeconds: num(o.eta) } : {}) };
      }
      entry.peer.volumes.push(pv);
      entry.peer.connection = connectionOf9(entry.conn, repl, this.api);
    }
    return [...byName.values()].map((r) => {
      summarize(r);
      if (this.splitBrainHelper.has(r.name) && r.connection === 'StandAlone') {
        r.splitBrain = true;
        r.splitBrainEvidence = 'helper';
      }
      return r;
    });
  }
}

/** Parses a whole `events2 --now` dump. */
export function parseEvents2(text: string, api = 2): { state: EventsState; resources: ResourceStatus[] } {
  const state = new EventsState(api);
  for (const line of text.split('\n')) {
    const ev = parseEvents2Line(line);
    if (ev) state.apply(ev);
  }
  return { state, resources: state.resources() };
}

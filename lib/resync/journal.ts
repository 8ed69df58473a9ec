// The merge journal on the local node: what merge is under way, how far each
// direction got, and the UUID chosen for finalising. A merge interrupted at
// any point and run again reads it and ends as an uninterrupted one would.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BisyncError, ErrorCode } from '../device/errors';
import { syncDir } from './archive';

/** forced*: blocks the destination also wrote, overwritten by an LVM resolution (archived first). */
export type TransferLane = 'toPeer' | 'toLocal' | 'conflicts' | 'forcedToPeer' | 'forcedToLocal';

/** Every lane from the start (a journal of an older version lacks the forced lanes: they count as not started). */
export const NO_PROGRESS: Record<TransferLane, number> = { toPeer: 0, toLocal: 0, conflicts: 0, forcedToPeer: 0, forcedToLocal: 0 };

export interface JournalState {
  version: 1;
  device: string;
  peer: string;
  startedAt: string;
  /** Current and bitmap UUIDs of both sides when the merge started. */
  localCurrent: string;
  peerCurrent: string;
  commonBitmap: string;
  policy: 'none' | 'prefer-local' | 'prefer-peer';
  archive: string | null;
  phase: 'transfer' | 'finalize';
  /** Per lane: every planned extent below this device offset is done. */
  doneBelow: Record<TransferLane, number>;
  /** Digests of both sides' change sets when planned: new writes since then void the lanes' progress. */
  changes?: { local: string; peer: string };
  /**
   * The LVM resolutions the merge started with (LV winners by uuid, VG metadata
   * winner, dropped LVs, or plain block mode): a resume must not switch winners,
   * because blocks already overwritten would then look identical to a re-plan.
   */
  lvm?: JournalLvm;
  /** Set on entering the finalize phase. */
  final?: { current: string; localHistory: string[]; peerHistory: string[] };
}

export interface JournalLvm {
  lvWinners: Record<string, 'local' | 'peer'>;
  vgMetadataWinner: 'local' | 'peer' | null;
  dropLvs: string[];
  lvm: boolean;
}

export class Journal {
  private constructor(readonly file: string, public state: JournalState) {}

  static load(file: string): Journal | undefined {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let state: unknown;
    try {
      state = JSON.parse(text);
    } catch {
      throw new BisyncError(ErrorCode.BAD_METADATA, `merge journal '${file}' is not valid JSON`, { hint: 'inspect it; remove it only if you know that merge was abandoned' });
    }
    return new Journal(file, checkState(file, state));
  }

  static create(file: string, state: JournalState): Journal {
    const j = new Journal(file, state);
    j.save();
    return j;
  }

  /** Writes the state atomically and durably (temp file, fsync, rename, fsync folder). */
  save(): void {
    const dir = path.dirname(this.file);
    // A folder made here must itself survive a power cut: sync its parent (mkdir returns the first one it made).
    const made = fs.mkdirSync(dir, { recursive: true });
    if (made) syncDir(path.dirname(made));
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(this.state, null, 2));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    syncDir(dir);
  }

  /** Records a lane's progress durably (the merge decides how often). */
  progress(lane: TransferLane, doneBelow: number): void {
    this.state.doneBelow[lane] = doneBelow;
    this.save();
  }

  remove(): void {
    fs.rmSync(this.file, { force: true });
    syncDir(path.dirname(this.file));
  }
}

/** Default journal path for a device: one per local device. */
export function defaultJournalPath(device: string, dir = '/var/lib/drbd-bisync'): string {
  return path.join(dir, `${device.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '_')}.journal.json`);
}

const UUID = /^[0-9A-F]{16}$/;
const LANES: readonly TransferLane[] = ['toPeer', 'toLocal', 'conflicts'];
/** Lanes a journal of an older version lacks: absent means not started. */
const LVM_LANES: readonly TransferLane[] = ['forcedToPeer', 'forcedToLocal'];

/**
 * Every field of a journal read back from disk, checked: a journal steers
 * which blocks a resume skips and which UUIDs it writes, so a damaged or
 * foreign one must stop the merge with the field and value named.
 */
function checkState(file: string, raw: unknown): JournalState {
  const fail = (field: string, value: unknown, expected: string): never => {
    throw new BisyncError(ErrorCode.BAD_METADATA, `merge journal '${file}': ${field} is ${JSON.stringify(value) ?? String(value)}, expected ${expected}`,
      { hint: 'inspect it; remove it only if you know that merge was abandoned' });
  };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(raw)) return fail('the document', raw, 'an object');
  const s = raw;
  if (s.version !== 1) fail('version', s.version, '1');
  const str = (field: string, v: unknown): void => {
    if (typeof v !== 'string' || !v) fail(field, v, 'a non-empty string');
  };
  const uuid = (field: string, v: unknown): void => {
    if (typeof v !== 'string' || !UUID.test(v)) fail(field, v, 'a UUID of 16 uppercase hex digits');
  };
  const uuids = (field: string, v: unknown): void => {
    if (!Array.isArray(v) || !v.length) return fail(field, v, 'a non-empty array of UUIDs');
    v.forEach((u, i) => uuid(`${field}[${i}]`, u));
  };
  str('device', s.device);
  str('peer', s.peer);
  if (typeof s.startedAt !== 'string' || Number.isNaN(Date.parse(s.startedAt))) fail('startedAt', s.startedAt, 'an ISO date');
  uuid('localCurrent', s.localCurrent);
  uuid('peerCurrent', s.peerCurrent);
  uuid('commonBitmap', s.commonBitmap);
  if (!['none', 'prefer-local', 'prefer-peer'].includes(s.policy as string)) fail('policy', s.policy, "'none', 'prefer-local' or 'prefer-peer'");
  if (s.archive !== null && (typeof s.archive !== 'string' || !s.archive)) fail('archive', s.archive, 'null or a folder path');
  if (s.phase !== 'transfer' && s.phase !== 'finalize') fail('phase', s.phase, "'transfer' or 'finalize'");
  if (!isObject(s.doneBelow)) fail('doneBelow', s.doneBelow, 'an object with toPeer, toLocal and conflicts');
  const done = s.doneBelow as Record<string, unknown>;
  for (const lane of [...LANES, ...LVM_LANES]) {
    if (done[lane] === undefined && LVM_LANES.includes(lane)) done[lane] = 0;
    const v = done[lane];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`doneBelow.${lane}`, v, 'an integer offset from 0 to 2^53-1');
  }
  if (s.lvm !== undefined) checkLvm(s.lvm, fail, isObject);
  if (s.changes !== undefined) {
    if (!isObject(s.changes)) fail('changes', s.changes, 'an object with local and peer digests');
    for (const side of ['local', 'peer'] as const) {
      const v = (s.changes as Record<string, unknown>)[side];
      if (typeof v !== 'string' || !/^[0-9a-f]{32}$/.test(v)) fail(`changes.${side}`, v, 'a digest of 32 hex digits');
    }
  }
  if (s.final !== undefined) {
    if (!isObject(s.final)) fail('final', s.final, 'an object with current, localHistory and peerHistory');
    const f = s.final as Record<string, unknown>;
    uuid('final.current', f.current);
    uuids('final.localHistory', f.localHistory);
    uuids('final.peerHistory', f.peerHistory);
  }
  if (s.phase === 'finalize' && s.final === undefined) fail('final', undefined, "the finalize phase's chosen UUIDs");
  return s as unknown as JournalState;
}

/** The recorded LVM resolutions: they decide which node's LV wins on a resume. */
function checkLvm(v: unknown, fail: (field: string, value: unknown, expected: string) => never, isObject: (v: unknown) => v is Record<string, unknown>): void {
  if (!isObject(v)) fail('lvm', v, 'an object with lvWinners, vgMetadataWinner, dropLvs and lvm');
  const l = v as Record<string, unknown>;
  if (!isObject(l.lvWinners)) fail('lvm.lvWinners', l.lvWinners, 'an object of LV uuid to "local" or "peer"');
  for (const [k, w] of Object.entries(l.lvWinners as Record<string, unknown>)) {
    if (w !== 'local' && w !== 'peer') fail(`lvm.lvWinners.${k}`, w, '"local" or "peer"');
  }
  if (l.vgMetadataWinner !== null && l.vgMetadataWinner !== 'local' && l.vgMetadataWinner !== 'peer') fail('lvm.vgMetadataWinner', l.vgMetadataWinner, 'null, "local" or "peer"');
  if (!Array.isArray(l.dropLvs) || l.dropLvs.some((d) => typeof d !== 'string' || !d)) fail('lvm.dropLvs', l.dropLvs, 'an array of LV uuids');
  if (typeof l.lvm !== 'boolean') fail('lvm.lvm', l.lvm, 'true or false');
}

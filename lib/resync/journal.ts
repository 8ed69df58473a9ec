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
  private lastWrite = 0;

  private constructor(readonly file: string, public state: JournalState) {}

  static load(file: string): Journal | undefined {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let state: JournalState;
    try {
      state = JSON.parse(text) as JournalState;
    } catch {
      throw new BisyncError(ErrorCode.BAD_METADATA, `merge journal '${file}' is not valid JSON`, { hint: 'inspect it; remove it only if you know that merge was abandoned' });
    }
    if (state.version !== 1) throw new BisyncError(ErrorCode.BAD_METADATA, `merge journal '${file}' has unknown version ${String(state.version)}`);
    return new Journal(file, state);
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
    this.lastWrite = Date.now();
  }

  /** Records progress; written at most every interval ms unless forced. */
  progress(lane: TransferLane, doneBelow: number, intervalMs = 500): void {
    this.state.doneBelow[lane] = doneBelow;
    if (Date.now() - this.lastWrite >= intervalMs) this.save();
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

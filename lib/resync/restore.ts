// Puts archived blocks back, one merge at a time. The bytes it overwrites (the
// merge's winners) are archived first into a sibling folder, so a restore can
// itself be undone.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { BisyncError, ErrorCode } from '../device/errors';
import { type Extent, totalBytes } from '../device/extent';
import { Archive, ArchiveEntry, MergeIdentity, openArchiveData, readArchiveData, readArchiveIndex } from './archive';
import { openExclusive } from './local-endpoint';
import * as os from 'node:os';

export interface RestoreOptions {
  /** Only entries saved from this side ('local' or 'peer' of the merge that archived them). */
  side?: 'local' | 'peer';
  /** The merge whose blocks to restore (default: the newest in the folder). */
  merge?: string;
  /** Where to save what the restore overwrites (default: DIR/undo-<time>). */
  undoDir?: string;
  dryRun?: boolean;
}

export interface RestoreReport {
  /** The merge restored; null for a folder written before merges had an identity. */
  merge: string | null;
  entries: number;
  restoredBytes: number;
  undo: string | null;
  sources: string[];
}

/** One merge's blocks in an archive folder. */
export interface ArchivedMerge {
  /** null: entries written before merges had an identity (a folder of one merge). */
  id: string | null;
  startedAt: string | null;
  uuids: Pick<MergeIdentity, 'local' | 'peer'> | null;
  entries: number;
  bytes: number;
  sources: string[];
  /** When its last entry was saved. */
  lastSavedAt: string;
}

const sourceOf = (e: ArchiveEntry): string => `${e.side}:${e.host}:${e.device}`;

/**
 * The merges a folder holds, oldest first. A folder whose entries all lack an
 * identity is one legacy merge. Refused as ambiguous: entries without an
 * identity next to entries with one (no way to tell which merge the old ones
 * belong to).
 */
export function archiveMerges(dir: string): ArchivedMerge[] {
  return groupByMerge(dir, readArchiveIndex(dir)).map(({ merge }) => merge);
}

/** Bytes the entries hold: each is an extent of the device it came from. */
function entryBytes(entries: ArchiveEntry[]): number {
  return totalBytes(entries.map((e): Extent => [e.offset, e.length]));
}

function groupByMerge(dir: string, all: ArchiveEntry[]): Array<{ merge: ArchivedMerge; entries: ArchiveEntry[] }> {
  const legacy = all.filter((e) => !e.merge).length;
  if (legacy && legacy < all.length) {
    throw new BisyncError(ErrorCode.REFUSED,
      `archive '${dir}' is ambiguous: ${legacy} of its ${all.length} entries were written without a merge identity (an older drbd-bisync) next to entries of identified merges, so they cannot be told apart`,
      { hint: 'restore from a folder that only one kind of merge wrote, or move index.jsonl lines by hand' });
  }
  const groups = new Map<string | null, ArchiveEntry[]>();
  for (const e of all) {
    const id = e.merge?.id ?? null;
    groups.set(id, [...(groups.get(id) ?? []), e]);
  }
  const out = [...groups].map(([id, entries]) => {
    const m = entries[0].merge;
    const merge: ArchivedMerge = {
      id,
      startedAt: m?.startedAt ?? null,
      uuids: m ? { local: m.local, peer: m.peer } : null,
      entries: entries.length,
      bytes: entryBytes(entries),
      sources: [...new Set(entries.map(sourceOf))],
      lastSavedAt: entries.reduce((t, e) => (e.savedAt > t ? e.savedAt : t), ''),
    };
    return { merge, entries };
  });
  // Newest last: by the merge's start, then by its last entry.
  return out.sort((a, b) => (a.merge.startedAt ?? '').localeCompare(b.merge.startedAt ?? '') || a.merge.lastSavedAt.localeCompare(b.merge.lastSavedAt));
}

/** The entries of the chosen merge (default the newest), filtered by side. */
function chooseMerge(dir: string, opts: RestoreOptions): { id: string | null; entries: ArchiveEntry[] } {
  const groups = groupByMerge(dir, readArchiveIndex(dir));
  if (!groups.length) return { id: opts.merge ?? null, entries: [] };
  let chosen = groups[groups.length - 1];
  if (opts.merge !== undefined) {
    const found = groups.find((g) => g.merge.id === opts.merge);
    if (!found) {
      const ids = groups.map((g) => g.merge.id).filter((id): id is string => id !== null);
      throw new BisyncError(ErrorCode.REFUSED,
        `archive '${dir}' holds no merge ${JSON.stringify(opts.merge)} (${ids.length ? `merges: ${ids.join(', ')}` : 'its entries have no merge identity: restore without --merge'})`);
    }
    chosen = found;
  }
  return { id: chosen.merge.id, entries: chosen.entries.filter((e) => !opts.side || e.side === opts.side) };
}

export async function restoreArchive(dir: string, device: string, opts: RestoreOptions = {}): Promise<RestoreReport> {
  const { id, entries } = chooseMerge(dir, opts);
  const sources = [...new Set(entries.map(sourceOf))];
  if (sources.length > 1) {
    throw new BisyncError(ErrorCode.REFUSED, `archive '${dir}' holds blocks of ${sources.length} devices (${sources.join(', ')})`, { hint: 'choose one with --side local|peer' });
  }
  const report: RestoreReport = { merge: id, entries: entries.length, restoredBytes: entryBytes(entries), undo: null, sources };
  if (opts.dryRun || !entries.length) return report;
  const dev = await openExclusive(device, true);
  const fd = openArchiveData(dir);
  const undoDir = opts.undoDir ?? path.join(dir, `undo-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const undo = Archive.open(undoDir);
  try {
    // Newest entry first, so the earliest saved bytes of a block are written last and stay: a resumed
    // merge may archive a block again after writing it (the winner's bytes). Restoring an undo folder
    // in the same order brings back exactly what was there before the restore.
    for (const e of [...entries].reverse()) {
      const data = readArchiveData(dir, fd, e);
      const where: Extent[] = [[e.offset, e.length]];
      undo.save({ side: 'local', host: os.hostname(), device }, where, await dev.gather(where));
      await dev.scatter(where, data);
    }
    await dev.flush();
    report.undo = undoDir;
    return report;
  } finally {
    undo.close();
    fs.closeSync(fd);
    await dev.close();
  }
}

export type { ArchiveEntry };

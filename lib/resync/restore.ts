// Puts archived blocks back. The bytes it overwrites (the merge's winners) are
// archived first into a sibling folder, so a restore can itself be undone.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { BisyncError, ErrorCode } from '../device/errors';
import type { Extent } from '../device/extent';
import { Archive, ArchiveEntry, openArchiveData, readArchiveData, readArchiveIndex } from './archive';
import { openExclusive } from './local-endpoint';
import * as os from 'node:os';

export interface RestoreOptions {
  /** Only entries saved from this side ('local' or 'peer' of the merge that archived them). */
  side?: 'local' | 'peer';
  /** Where to save what the restore overwrites (default: DIR/undo-<time>). */
  undoDir?: string;
  dryRun?: boolean;
}

export interface RestoreReport {
  entries: number;
  restoredBytes: number;
  undo: string | null;
  sources: string[];
}

export async function restoreArchive(dir: string, device: string, opts: RestoreOptions = {}): Promise<RestoreReport> {
  const entries = readArchiveIndex(dir).filter((e) => !opts.side || e.side === opts.side);
  const sources = [...new Set(entries.map((e) => `${e.side}:${e.host}:${e.device}`))];
  if (sources.length > 1) {
    throw new BisyncError(ErrorCode.REFUSED, `archive '${dir}' holds blocks of ${sources.length} devices (${sources.join(', ')})`, { hint: 'choose one with --side local|peer' });
  }
  const report: RestoreReport = { entries: entries.length, restoredBytes: entries.reduce((s, e) => s + e.length, 0), undo: null, sources };
  if (opts.dryRun || !entries.length) return report;
  const dev = await openExclusive(device, true);
  const fd = openArchiveData(dir);
  const undoDir = opts.undoDir ?? path.join(dir, `undo-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const undo = Archive.open(undoDir);
  try {
    for (const e of entries) {
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

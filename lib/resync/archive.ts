// The archive of blocks a merge overwrote because of a conflict policy: the
// loser's bytes, saved durably before they are overwritten, so that
// `restore-archive` can put them back.
//
// Layout of an archive folder: blocks.bin (raw block data, appended) and
// index.jsonl (one line per saved range, appended after its data is synced).
// A line names the device, host and side the bytes came from, the device
// offset and length, where the bytes sit in blocks.bin, their XXH3-128, and
// the merge that saved them (its id and both nodes' UUIDs before it), so a
// folder reused by several merges restores one merge at a time. Lines written
// before merges had an identity have no `merge` field.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BisyncError, ErrorCode } from '../device/errors';
import type { Extent } from '../device/extent';
import { native } from '../native/binding';

/** Which merge saved an entry: the same for every entry of one merge, resumed or not. */
export interface MergeIdentity {
  id: string;
  startedAt: string;
  /** Both nodes' current and bitmap UUIDs before the merge. */
  local: { current: string; bitmap: string };
  peer: { current: string; bitmap: string };
}

export interface ArchiveSource {
  side: 'local' | 'peer';
  host: string;
  device: string;
  merge?: MergeIdentity;
}

export interface ArchiveEntry extends ArchiveSource {
  offset: number;
  length: number;
  dataOffset: number;
  xxh128: string;
  savedAt: string;
}

const DATA = 'blocks.bin';
const INDEX = 'index.jsonl';

export class Archive {
  private constructor(readonly dir: string, private dataFd: number, private indexFd: number, private dataEnd: number) {}

  static open(dir: string): Archive {
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      syncDir(path.dirname(path.resolve(dir))); // the new folder's own entry, before anything relies on it
    }
    dropTornLine(path.join(dir, INDEX));
    const dataFd = fs.openSync(path.join(dir, DATA), 'a');
    const indexFd = fs.openSync(path.join(dir, INDEX), 'a');
    syncDir(dir);
    return new Archive(dir, dataFd, indexFd, fs.fstatSync(dataFd).size);
  }

  /** Saves data read from `extents` of a device (back to back, as gather returns it); durable on return. */
  save(source: ArchiveSource, extents: readonly Extent[], data: Buffer): number {
    const start = this.dataEnd;
    try {
      writeAll(this.dataFd, data);
      fs.fdatasyncSync(this.dataFd);
    } catch (e) {
      // Keep blocks.bin's end where the index expects the next entry.
      try {
        fs.ftruncateSync(this.dataFd, start);
      } catch {
        // the next open takes the file's real size
      }
      throw e;
    }
    this.dataEnd += data.length;
    const savedAt = new Date().toISOString();
    let pos = 0;
    const lines = extents.map(([offset, length]) => {
      const slice = data.subarray(pos, pos + length);
      const entry: ArchiveEntry = { ...source, offset, length, dataOffset: start + pos, xxh128: native.hashBuffer(slice).toString('hex'), savedAt };
      pos += length;
      return JSON.stringify(entry);
    });
    writeAll(this.indexFd, Buffer.from(`${lines.join('\n')}\n`));
    fs.fdatasyncSync(this.indexFd);
    return data.length;
  }

  close(): void {
    fs.closeSync(this.dataFd);
    fs.closeSync(this.indexFd);
  }
}

/** Reads an archive's index; a torn last line (a crash mid-append) is ignored. */
export function readArchiveIndex(dir: string): ArchiveEntry[] {
  const file = path.join(dir, INDEX);
  if (!fs.existsSync(file)) throw new BisyncError(ErrorCode.REFUSED, `'${dir}' is not a drbd-bisync archive (no ${INDEX})`);
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const entries: ArchiveEntry[] = [];
  lines.forEach((line, i) => {
    try {
      entries.push(JSON.parse(line) as ArchiveEntry);
    } catch {
      if (i !== lines.length - 1) throw new BisyncError(ErrorCode.BAD_METADATA, `archive index ${file}: line ${i + 1} is not JSON`);
    }
  });
  return entries;
}

/** The bytes of one entry, checked against its digest. */
export function readArchiveData(dir: string, fd: number, e: ArchiveEntry): Buffer {
  const buf = Buffer.alloc(e.length);
  const n = fs.readSync(fd, buf, 0, e.length, e.dataOffset);
  if (n !== e.length || native.hashBuffer(buf).toString('hex') !== e.xxh128) {
    throw new BisyncError(ErrorCode.CHECKSUM, `archive ${dir}: data of entry at device offset ${e.offset} (length ${e.length}) is damaged`);
  }
  return buf;
}

export function openArchiveData(dir: string): number {
  return fs.openSync(path.join(dir, DATA), 'r');
}

/** A full disk can accept part of a write without an error; the rest then fails with ENOSPC. */
function writeAll(fd: number, data: Buffer): void {
  for (let done = 0; done < data.length; ) done += fs.writeSync(fd, data, done);
}

/** A crash mid-append leaves a line without its newline; the next append must not glue onto it. */
function dropTornLine(file: string): void {
  let text: Buffer;
  try {
    text = fs.readFileSync(file);
  } catch {
    return;
  }
  if (!text.length || text[text.length - 1] === 0x0a) return;
  fs.truncateSync(file, text.lastIndexOf(0x0a) + 1);
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export { syncDir };

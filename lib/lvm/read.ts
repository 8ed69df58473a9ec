// One node's LVM view of its device: label → metadata area headers → committed
// text (CRC checked) → VolumeGroup with every LV's bytes on this PV, plus the
// older copies still in the ring.
import { BlockDevice } from '../device/block-device';
import { type Extent, normalize } from '../device/extent';
import { badLvm, raw } from './errors';
import { type RingCopy, scanRing } from './history';
import { LABEL_SCAN_BYTES, type Label, parseLabel, SECTOR } from './label';
import { lvmCrc } from './crc';
import { type MdaHeader, parseMdaHeader, type ReadFn, readCommittedText, readExact, readRing } from './mda';
import { annotateOvirt } from './ovirt';
import { parseConfig } from './text';
import type { LvmSource, LvmView, MetadataCopy, VolumeGroup } from './types';
import { buildVg, parseFooter, vgSection } from './vg';

export type { ReadFn };

/** Bytes LVM reserves before mda1 for the label, whatever sector holds it. */
const LABEL_REGION = 4096;

export interface ReadLvmOptions {
  /** Scan the ring for older copies (default true); false leaves `history` empty and reads only the committed text. */
  history?: boolean;
  /**
   * At most this many older copies (newest first; default all). A ring that has
   * wrapped is full of copies: oVirt's 128 MiB area is then read whole.
   */
  historyLimit?: number;
}

interface Committed {
  label: Label;
  headers: MdaHeader[];
  /** The mda whose committed text is used (highest seqno when the areas disagree). */
  source: MdaHeader;
  text: string;
  vg: VolumeGroup;
  unallocated: Extent[];
  copy: MetadataCopy;
}

/** Label and mda headers, or null when the device holds no PV with VG metadata. */
async function readHeaders(read: ReadFn, deviceSize: number): Promise<{ label: Label; headers: MdaHeader[]; firstError: Error | null } | null> {
  const head = await read(0, Math.min(LABEL_SCAN_BYTES, deviceSize));
  const label = parseLabel(head, deviceSize);
  if (!label) return null;
  const headers: MdaHeader[] = [];
  let firstError: Error | null = null;
  for (const [i, loc] of label.mdaLocations.entries()) {
    try {
      const h = await readExact(read, loc.start, SECTOR, `mda${i}_header`);
      headers.push(parseMdaHeader(h, i, loc.start, loc.size));
    } catch (e) {
      firstError ??= e as Error;
    }
  }
  return { label, headers, firstError };
}

/**
 * The committed VG: from each metadata area in use, its text checked against
 * its CRC; LVM ignores an area that fails a check, so do we, as long as another
 * one is good. Null for a PV without VG metadata (orphan, or every area ignored).
 */
async function readCommitted(read: ReadFn, deviceSize: number): Promise<Committed | null> {
  const h = await readHeaders(read, deviceSize);
  if (!h) return null;
  let firstError = h.firstError;
  const inUse = h.headers.filter((m) => m.committed !== null);
  if (inUse.length === 0) {
    if (firstError) throw firstError;
    return null;
  }
  let best: Committed | null = null;
  for (const mda of inUse) {
    // Both areas normally hold the same copy: parse it once.
    if (best && best.copy.checksum === mda.committed!.checksum && best.copy.size === mda.committed!.size) continue;
    try {
      const raw = await readCommittedText(read, mda);
      const text = raw.toString('utf8');
      const what = `mda${mda.index} committed text`;
      const root = parseConfig(text, what);
      const { vg, unallocated } = buildVg(root, h.label.uuid, deviceSize, what);
      const copy: MetadataCopy = { seqno: vg.seqno, checksum: mda.committed!.checksum, mda: mda.index, offset: mda.committed!.offset, size: mda.committed!.size, ...parseFooter(root) };
      if (!best || vg.seqno > best.vg.seqno) best = { label: h.label, headers: h.headers, source: mda, text, vg, unallocated, copy };
    } catch (e) {
      firstError ??= e as Error;
    }
  }
  if (!best) throw firstError!;
  return best;
}

function metadataRegion(label: Label): Extent[] {
  const region: Extent[] = [[0, Math.min(LABEL_REGION, label.peStart || LABEL_REGION)]];
  for (const m of label.mdaLocations) region.push([m.start, m.size]);
  return normalize(region);
}

function publicCopy(c: RingCopy): MetadataCopy {
  const { text: _text, ...copy } = c;
  return copy;
}

/** Older copies, newest first, one per (seqno, checksum), none at or after the committed seqno. */
function olderCopies(copies: RingCopy[], committed: MetadataCopy): MetadataCopy[] {
  const seen = new Set<string>();
  const out: MetadataCopy[] = [];
  for (const c of copies.sort((a, b) => b.seqno - a.seqno || a.offset - b.offset)) {
    const key = `${c.seqno}:${c.checksum}`;
    // A copy past the committed seqno was precommitted and never committed: not history.
    if (c.seqno >= committed.seqno || seen.has(key)) continue;
    seen.add(key);
    out.push(publicCopy(c));
  }
  return out;
}

/** readCommitted with the oVirt annotations (read once per committed VG). */
async function readAnnotated(read: ReadFn, deviceSize: number): Promise<Committed | null> {
  const c = await readCommitted(read, deviceSize);
  if (c) await annotateOvirt(c.vg, read);
  return c;
}

/** The ring's older copies behind the committed one (from the mda whose text is used). */
async function readHistory(read: ReadFn, c: Committed, limit?: number): Promise<MetadataCopy[]> {
  return olderCopies(await scanRing(read, c.source, c.vg.name, { limit }), c.copy);
}

function viewOf(c: Committed, history: MetadataCopy[]): LvmView {
  return {
    pv: {
      uuid: c.label.uuid,
      labelSector: c.label.labelSector,
      deviceSize: c.label.deviceSize,
      peStart: c.label.peStart,
      mdas: c.label.mdaLocations.map((m, i) => ({ start: m.start, size: m.size, ignored: c.headers.find((x) => x.index === i)?.ignored ?? false })),
    },
    metadataRegion: metadataRegion(c.label),
    committed: c.copy,
    history,
    vg: c.vg,
    unallocated: c.unallocated,
  };
}

/**
 * Reads the LVM2 PV on a device through `read` (absolute offset, length →
 * bytes; shorter only at the device end). Null when sectors 0-3 hold no LVM2
 * label, or the PV holds no VG metadata. Damaged or unknown metadata throws a
 * BisyncError ERR_BAD_LVM naming the field, its offset and value.
 */
export async function readLvm(read: ReadFn, deviceSize: number, opts: ReadLvmOptions = {}): Promise<LvmView | null> {
  const c = await readAnnotated(read, deviceSize);
  if (!c) return null;
  return viewOf(c, opts.history === false ? [] : await readHistory(read, c, opts.historyLimit));
}

/**
 * An older (or the committed) VG version by (seqno, checksum), parsed from
 * whichever of this device's rings still holds it. Refused with ERR_BAD_LVM when
 * no ring holds it (overwritten by the ring wrapping) or the device holds no VG.
 */
export async function readLvmVersion(read: ReadFn, deviceSize: number, seqno: number, checksum: number): Promise<VolumeGroup> {
  const c = await readAnnotated(read, deviceSize);
  if (!c) throw noVg();
  return versionOf(read, deviceSize, c, seqno, checksum, []);
}

function noVg(): Error {
  return badLvm('label', 0, raw('none'), 'holds no LVM2 PV with VG metadata, so no VG version can be read');
}

/**
 * Version (seqno, checksum) of the VG `c` committed: `c` itself, else the copy where
 * `known` (copies an earlier ring scan listed) says it is, else the first ring that holds it.
 */
async function versionOf(read: ReadFn, deviceSize: number, c: Committed, seqno: number, checksum: number, known: MetadataCopy[]): Promise<VolumeGroup> {
  const wanted = (x: MetadataCopy): boolean => x.seqno === seqno && x.checksum === checksum;
  if (wanted(c.copy)) return c.vg;
  const at = known.find(wanted);
  const mdaOf = (i: number): MdaHeader | undefined => c.headers.find((m) => m.index === i && m.committed !== null);
  if (at && mdaOf(at.mda)) {
    const text = await readRing(read, mdaOf(at.mda)!, at.offset, at.size);
    // Still that copy (its bytes and NUL give the checksum): parsed without a scan.
    if (text[text.length - 1] === 0 && lvmCrc(text) === at.checksum) {
      const vg = await ringVg(read, deviceSize, c, at, text.subarray(0, text.length - 1));
      if (vg) return vg;
    }
  }
  for (const mda of c.headers.filter((m) => m.committed !== null)) {
    const found = (await scanRing(read, mda, c.vg.name, { until: wanted })).find(wanted);
    const vg = found && await ringVg(read, deviceSize, c, found, found.text);
    if (vg) return vg;
  }
  throw badLvm('metadata ring', c.source.start, raw(`seqno ${seqno} checksum 0x${(checksum >>> 0).toString(16)}`), 'is in no metadata area ring of this device (overwritten since?)');
}

/** A ring copy's VG, annotated; null when the copy is of another VG than the committed one. */
async function ringVg(read: ReadFn, deviceSize: number, c: Committed, copy: MetadataCopy, text: Buffer): Promise<VolumeGroup | null> {
  const what = `mda${copy.mda} ring copy at mda offset ${copy.offset}`;
  const root = parseConfig(text.toString('utf8'), what);
  if (vgSection(root, what).name !== c.vg.name) return null;
  const { vg } = buildVg(root, c.label.uuid, deviceSize, what);
  await annotateOvirt(vg, read);
  return vg;
}

/**
 * One device's LVM, read once: the committed VG is read, parsed and annotated on first use
 * and kept; the ring is scanned only when history is asked for, and an older version is read
 * where that scan found it instead of scanning again. For a device held exclusively, whose
 * PV nobody changes meanwhile (a local endpoint).
 */
export class LvmReader implements LvmSource {
  private committed?: Promise<Committed | null>;
  private full?: Promise<LvmView | null>;
  private bare?: Promise<LvmView | null>;

  constructor(private readonly read: ReadFn, private readonly deviceSize: number) {}

  private commit(): Promise<Committed | null> {
    return (this.committed ??= readAnnotated(this.read, this.deviceSize));
  }

  lvm(opts: { history?: boolean } = {}): Promise<LvmView | null> {
    if (opts.history === false) return this.full ?? (this.bare ??= this.commit().then((c) => c && viewOf(c, [])));
    return (this.full ??= this.commit().then(async (c) => c && viewOf(c, await readHistory(this.read, c))));
  }

  async lvmVersion(seqno: number, checksum: number): Promise<VolumeGroup> {
    const c = await this.commit();
    if (!c) throw noVg();
    return versionOf(this.read, this.deviceSize, c, seqno, checksum, (await this.full?.catch(() => null))?.history ?? []);
  }
}

/** An LvmSource over one device's bytes: what a local endpoint (or the serve agent) offers for its node. */
export function lvmSource(read: ReadFn, deviceSize: number, opts: ReadLvmOptions = {}): LvmSource {
  return {
    lvm: () => readLvm(read, deviceSize, opts),
    lvmVersion: (seqno, checksum) => readLvmVersion(read, deviceSize, seqno, checksum),
  };
}

/** The read callback over an open BlockDevice. */
export function deviceReader(dev: BlockDevice): ReadFn {
  return (offset, length) => dev.read(offset, Math.max(0, Math.min(length, dev.size - offset)));
}

/**
 * readLvm on a device path (opened read-only with O_DIRECT, so the page cache
 * cannot hide what LVM on this node wrote directly) or an already open BlockDevice.
 */
export async function readLvmFromDevice(device: string | BlockDevice, opts: ReadLvmOptions = {}): Promise<LvmView | null> {
  const dev = typeof device === 'string' ? await BlockDevice.open(device) : device;
  try {
    return await readLvm(deviceReader(dev), dev.size, opts);
  } finally {
    if (typeof device === 'string') await dev.close();
  }
}

// One node's LVM view of its device: label → metadata area headers → committed
// text (CRC checked) → VolumeGroup with every LV's bytes on this PV, plus the
// older copies still in the ring.
import { BlockDevice } from '../device/block-device';
import { type Extent, normalize } from '../device/extent';
import { badLvm, hex, raw } from './errors';
import { type RingCopy, scanRing } from './history';
import { LABEL_SCAN_BYTES, type Label, parseLabel, SECTOR } from './label';
import { type MdaHeader, parseMdaHeader, type ReadFn, readCommittedText, readExact } from './mda';
import { annotateOvirt } from './ovirt';
import { parseConfig } from './text';
import type { LvmView, MetadataCopy, VolumeGroup } from './types';
import { buildVg, parseFooter, vgSection } from './vg';

export type { ReadFn };

/** Bytes LVM reserves before mda1 for the label, whatever sector holds it. */
const LABEL_REGION = 4096;

export interface ReadLvmOptions {
  /** Scan the ring for older copies (default true); false leaves `history` empty and reads only the committed text. */
  history?: boolean;
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

/**
 * Reads the LVM2 PV on a device through `read` (absolute offset, length →
 * bytes; shorter only at the device end). Null when sectors 0-3 hold no LVM2
 * label, or the PV holds no VG metadata. Damaged or unknown metadata throws a
 * BisyncError ERR_BAD_LVM naming the field, its offset and value.
 */
export async function readLvm(read: ReadFn, deviceSize: number, opts: ReadLvmOptions = {}): Promise<LvmView | null> {
  const c = await readCommitted(read, deviceSize);
  if (!c) return null;
  await annotateOvirt(c.vg, read);
  const history = opts.history === false ? [] : olderCopies(await scanRing(read, c.source, c.vg.name), c.copy);
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
 * An older (or the committed) VG version by (seqno, checksum), parsed from
 * whichever of this device's rings still holds it. Refused with ERR_BAD_LVM when
 * no ring holds it (overwritten by the ring wrapping) or the device holds no VG.
 */
export async function readLvmVersion(read: ReadFn, deviceSize: number, seqno: number, checksum: number): Promise<VolumeGroup> {
  const c = await readCommitted(read, deviceSize);
  if (!c) throw badLvm('label', 0, raw('none'), 'holds no LVM2 PV with VG metadata, so no VG version can be read');
  if (c.copy.seqno === seqno && c.copy.checksum === checksum) {
    await annotateOvirt(c.vg, read);
    return c.vg;
  }
  for (const mda of c.headers.filter((m) => m.committed !== null)) {
    const found = (await scanRing(read, mda, c.vg.name)).find((x) => x.seqno === seqno && x.checksum === checksum);
    if (!found) continue;
    const what = `mda${mda.index} ring copy at mda offset ${found.offset}`;
    const root = parseConfig(found.text.toString('utf8'), what);
    if (vgSection(root, what).name !== c.vg.name) continue;
    const { vg } = buildVg(root, c.label.uuid, deviceSize, what);
    await annotateOvirt(vg, read);
    return vg;
  }
  throw badLvm('metadata ring', c.source.start, raw(`seqno ${seqno} checksum 0x${(checksum >>> 0).toString(16)}`), 'is in no metadata area ring of this device (overwritten since?)');
}

/** The read callback over an open BlockDevice. */
export function deviceReader(dev: BlockDevice): ReadFn {
  return (offset, length) => dev.read(offset, Math.max(0, Math.min(length, dev.size - offset)));
}

/** readLvm on a device path (opened read-only, buffered) or an already open BlockDevice. */
export async function readLvmFromDevice(device: string | BlockDevice, opts: ReadLvmOptions = {}): Promise<LvmView | null> {
  const dev = typeof device === 'string' ? await BlockDevice.open(device, { direct: false }) : device;
  try {
    return await readLvm(deviceReader(dev), dev.size, opts);
  } finally {
    if (typeof device === 'string') await dev.close();
  }
}

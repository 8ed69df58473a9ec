// oVirt block storage domains: a VG tagged RHAT_storage_domain, special LVs by
// name, VM disk volumes by tags (IU_ image, PU_ parent, MD_ metadata slot). The
// disk's alias comes from the volume's record in the `metadata` LV, best effort:
// anything unreadable there leaves the alias null and is never an error.
import type { Extent } from '../device/extent';
import type { ReadFn } from './mda';
import type { LogicalVolume, OvirtRole, OvirtVolume, VolumeGroup } from './types';

const SPECIAL = new Set<OvirtRole>(['metadata', 'ids', 'inbox', 'outbox', 'leases', 'xleases', 'master']);
/** VDSM renames the image tag of a disk being deleted; the disk is still that image. */
const REMOVE_PREFIX = /^_remove_me_(ZERO_)?/;
/** A volume record is at most 512 bytes of KEY=value lines ending with EOF. */
const RECORD = 512;
/** Read the slots of all volumes in one request when they lie within this span. */
const MAX_SPAN = 32 << 20;

function tagValue(tags: string[], prefix: string): string | null {
  const t = tags.find((x) => x.startsWith(prefix));
  return t === undefined ? null : t.slice(prefix.length);
}

export function ovirtRole(lv: LogicalVolume): OvirtVolume {
  if (SPECIAL.has(lv.name as OvirtRole)) return { role: lv.name as OvirtRole, image: null, parent: null, mdSlot: null, alias: null };
  const image = tagValue(lv.tags, 'IU_');
  const slot = tagValue(lv.tags, 'MD_');
  return {
    role: 'volume',
    image: image === null ? null : image.replace(REMOVE_PREFIX, ''),
    parent: tagValue(lv.tags, 'PU_'),
    mdSlot: slot !== null && /^\d{1,9}$/.test(slot) ? Number(slot) : null,
    alias: null,
  };
}

/** The domain version from the VG tag MDT_VERSION (block domains keep their metadata in VG tags). */
export function domainVersion(vg: VolumeGroup): number | null {
  const v = tagValue(vg.tags, 'MDT_VERSION=');
  return v !== null && /^\d+$/.test(v) ? Number(v) : null;
}

/** Where a slot's record lies inside the metadata LV: V5 has 8 KiB slots after 1 MiB, older ones 512-byte slots from 0. */
export function slotOffset(version: number, slot: number): number {
  return version >= 5 ? (1 << 20) + slot * 8192 : slot * RECORD;
}

/** Maps an offset inside an LV to a device offset through its extents (this PV only); null when not here. */
function lvToDevice(extents: readonly Extent[], offset: number, length: number): number | null {
  let lvPos = 0;
  for (const [start, len] of extents) {
    if (offset >= lvPos && offset + length <= lvPos + len) return start + (offset - lvPos);
    lvPos += len;
  }
  return null;
}

/** DiskAlias from a record's DESCRIPTION (JSON in VDSM >= 4.x); null when absent or not JSON. */
export function aliasFromRecord(record: Buffer, image: string | null): string | null {
  const text = record.toString('utf8');
  const end = text.indexOf('\nEOF');
  if (end < 0) return null;
  const fields = new Map<string, string>();
  for (const line of text.slice(0, end).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  // A slot reused or not yet written for this volume belongs to another image.
  const recImage = fields.get('IMAGE');
  if (recImage !== undefined && image !== null && recImage !== image) return null;
  const desc = fields.get('DESCRIPTION');
  if (!desc) return null;
  try {
    const d: unknown = JSON.parse(desc);
    const alias = d && typeof d === 'object' ? (d as Record<string, unknown>).DiskAlias : undefined;
    return typeof alias === 'string' ? alias : null;
  } catch {
    return null;
  }
}

/**
 * Sets `ovirt` on every LV of an oVirt VG (left null otherwise) and reads the
 * volumes' aliases through `read`. The metadata LV must sit on this PV.
 */
export async function annotateOvirt(vg: VolumeGroup, read: ReadFn): Promise<void> {
  if (!vg.ovirt) return;
  for (const lv of vg.lvs) lv.ovirt = ovirtRole(lv);
  const md = vg.lvs.find((lv) => lv.ovirt?.role === 'metadata');
  const version = domainVersion(vg);
  if (!md || version === null) return;
  const wanted: Array<{ lv: LogicalVolume; at: number }> = [];
  for (const lv of vg.lvs) {
    const slot = lv.ovirt?.mdSlot;
    if (slot === null || slot === undefined) continue;
    const at = lvToDevice(md.extents, slotOffset(version, slot), RECORD);
    if (at !== null) wanted.push({ lv, at });
  }
  if (wanted.length === 0) return;
  try {
    const lo = Math.min(...wanted.map((w) => w.at));
    const hi = Math.max(...wanted.map((w) => w.at)) + RECORD;
    const span = hi - lo <= MAX_SPAN ? await read(lo, hi - lo) : null;
    for (const w of wanted) {
      const rec = span ? span.subarray(w.at - lo, w.at - lo + RECORD) : await read(w.at, RECORD);
      if (rec.length === RECORD) w.lv.ovirt!.alias = aliasFromRecord(rec, w.lv.ovirt!.image);
    }
  } catch {
    // The alias is a courtesy for the report: an unreadable metadata LV leaves it null.
  }
}

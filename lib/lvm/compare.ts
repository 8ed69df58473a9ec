// Two nodes' VGs after a split: which node moved past the newest version both
// still hold, what each changed since (LVs matched by id, never by name), and
// which physical extents the two committed VGs give to different owners.
import { totalBytes } from '../device/extent';
import type { LogicalVolume, LvmView, MetadataComparison, VgChange, VolumeGroup } from './types';

export interface VersionId {
  seqno: number;
  checksum: number;
}

const key = (v: VersionId): string => `${v.seqno}:${v.checksum >>> 0}`;
const same = (a: VersionId, b: VersionId): boolean => a.seqno === b.seqno && a.checksum >>> 0 === b.checksum >>> 0;

/**
 * The newest (seqno, checksum) present on both nodes, committed or in a ring;
 * null when none is (or the two views are of different VGs). seqno alone cannot
 * decide: two nodes that each made the same number of changes share a seqno.
 */
export function commonVersion(local: LvmView, peer: LvmView): VersionId | null {
  if (local.vg.uuid !== peer.vg.uuid) return null;
  const mine = new Set([local.committed, ...local.history].map(key));
  let best: VersionId | null = null;
  for (const v of [peer.committed, ...peer.history]) {
    if (mine.has(key(v)) && (!best || v.seqno > best.seqno)) best = { seqno: v.seqno, checksum: v.checksum };
  }
  return best;
}

const sizeOf = (lv: LogicalVolume): number => lv.size ?? totalBytes(lv.extents);
const sameTags = (a: string[], b: string[]): boolean => a.length === b.length && [...a].sort().join('\0') === [...b].sort().join('\0');

/**
 * What `cur` changed relative to `base`. Without a base (no common version)
 * `other` stands in for it and removals cannot be told from the other node's
 * creations, so only creations, renames, resizes and retags are reported.
 */
export function vgChanges(base: VolumeGroup | null, cur: VolumeGroup, other: VolumeGroup): VgChange[] {
  const ref = base ?? other;
  const before = new Map(ref.lvs.map((lv) => [lv.uuid, lv]));
  const now = new Map(cur.lvs.map((lv) => [lv.uuid, lv]));
  const out: VgChange[] = [];
  for (const lv of cur.lvs) {
    const old = before.get(lv.uuid);
    if (!old) {
      out.push({ kind: 'created', lv: lv.name, uuid: lv.uuid });
      continue;
    }
    if (old.name !== lv.name) out.push({ kind: 'renamed', lv: lv.name, uuid: lv.uuid });
    if (sizeOf(old) !== sizeOf(lv)) out.push({ kind: 'resized', lv: lv.name, uuid: lv.uuid });
    if (!sameTags(old.tags, lv.tags)) out.push({ kind: 'retagged', lv: lv.name, uuid: lv.uuid });
  }
  if (base) for (const lv of base.lvs) if (!now.has(lv.uuid)) out.push({ kind: 'removed', lv: lv.name, uuid: lv.uuid });
  return out.sort((a, b) => (a.lv < b.lv ? -1 : a.lv > b.lv ? 1 : 0) || (a.kind < b.kind ? -1 : 1));
}

/** Byte runs of this PV with their owner's index in vg.lvs, sorted. */
function owners(vg: VolumeGroup): Array<[number, number, number]> {
  const runs: Array<[number, number, number]> = [];
  vg.lvs.forEach((lv, i) => {
    for (const [off, len] of lv.extents) runs.push([off, off + len, i]);
  });
  return runs.sort((a, b) => a[0] - b[0]);
}

/**
 * Every PE the two committed VGs allocate differently (owner LV by id; free
 * counts as an owner), as [firstPe, count, localOwner | null, peerOwner | null],
 * numbered by the local VG's pe_start and extent size.
 */
export function extentConflicts(local: VolumeGroup, peer: VolumeGroup, peStart: number): Array<[number, number, string | null, string | null]> {
  const a = owners(local);
  const b = owners(peer);
  const cuts = new Set<number>();
  for (const [s, e] of [...a, ...b]) {
    cuts.add(s);
    cuts.add(e);
  }
  const points = [...cuts].sort((x, y) => x - y);
  const out: Array<[number, number, string | null, string | null]> = [];
  let i = 0;
  let j = 0;
  const start = local.peStart ?? peStart;
  for (let k = 0; k + 1 < points.length; k++) {
    const [lo, hi] = [points[k], points[k + 1]];
    while (i < a.length && a[i][1] <= lo) i++;
    while (j < b.length && b[j][1] <= lo) j++;
    const la = i < a.length && a[i][0] <= lo ? local.lvs[a[i][2]] : null;
    const pb = j < b.length && b[j][0] <= lo ? peer.lvs[b[j][2]] : null;
    if ((la?.uuid ?? null) === (pb?.uuid ?? null)) continue;
    const firstPe = Math.floor((lo - start) / local.extentSize);
    const count = Math.ceil((hi - start) / local.extentSize) - firstPe;
    const l = la?.name ?? null;
    const p = pb?.name ?? null;
    const last = out[out.length - 1];
    if (last && last[2] === l && last[3] === p && last[0] + last[1] >= firstPe) last[1] = Math.max(last[1], firstPe + count - last[0]);
    else out.push([firstPe, count, l, p]);
  }
  return out;
}

/**
 * Compares the two nodes' committed metadata. `ancestor` is the VG of the
 * common version (readLvmVersion of commonVersion(local, peer)), or null when
 * there is none or it could not be read; a caller that already computed that
 * common version passes it as `known`. Extent conflicts are reported only
 * when both nodes changed the VG: a one-sided change moves as a whole.
 */
export function compareMetadata(local: LvmView, peer: LvmView, ancestor: VolumeGroup | null, known?: VersionId | null): MetadataComparison {
  const l = { seqno: local.committed.seqno, checksum: local.committed.checksum };
  const p = { seqno: peer.committed.seqno, checksum: peer.committed.checksum };
  const none = { local: [], peer: [] };
  if (same(l, p) && local.vg.uuid === peer.vg.uuid) return { local: l, peer: p, common: l, changedOn: 'none', changes: none, extentConflicts: [] };
  const common = known !== undefined ? known : commonVersion(local, peer);
  if (common && same(common, l)) {
    return { local: l, peer: p, common, changedOn: 'peer', changes: { local: [], peer: vgChanges(ancestor ?? local.vg, peer.vg, local.vg) }, extentConflicts: [] };
  }
  if (common && same(common, p)) {
    return { local: l, peer: p, common, changedOn: 'local', changes: { local: vgChanges(ancestor ?? peer.vg, local.vg, peer.vg), peer: [] }, extentConflicts: [] };
  }
  return {
    local: l,
    peer: p,
    common,
    changedOn: 'both',
    changes: { local: vgChanges(ancestor, local.vg, peer.vg), peer: vgChanges(ancestor, peer.vg, local.vg) },
    extentConflicts: extentConflicts(local.vg, peer.vg, local.pv.peStart),
  };
}

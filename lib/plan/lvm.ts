// The plan on an LVM2 physical volume: every changed block of each node is
// attributed to the LVM metadata region, to an LV (matched by LV uuid across
// the nodes), or to unallocated extents, and the unit of decision becomes the
// LV (the VM disk) instead of the block. Two histories of one filesystem cannot
// be combined block by block, so an LV that both nodes really changed is a
// conflict even when no block overlaps.
import { Extent, intersect, normalize, subtract, totalBytes, union } from '../device/extent';
import type { LogicalVolume, LvmView, MetadataComparison, OvirtRole } from '../lvm/types';
import type { Endpoint } from '../transport/endpoint';
import { compareOverlap, hashBothSides, push } from './plan';

export type Side = 'local' | 'peer';
export type LvVerdict = 'unchanged' | 'local-only' | 'peer-only' | 'both';

/** The verdict of which nodes changed something: both, one of them, or neither. */
export function lvVerdict(local: boolean, peer: boolean): LvVerdict {
  return local && peer ? 'both' : local ? 'local-only' : peer ? 'peer-only' : 'unchanged';
}

/** Several verdicts as one: a node changed it when it changed any part (local-only and peer-only parts make both). */
export function joinVerdicts(verdicts: Iterable<LvVerdict>): LvVerdict {
  let local = false;
  let peer = false;
  for (const v of verdicts) {
    local ||= v === 'local-only' || v === 'both';
    peer ||= v === 'peer-only' || v === 'both';
  }
  return lvVerdict(local, peer);
}
export type LvResolution = null | Side | 'sector-merge' | 'dropped';

/** What the operator decided (plan() and Merge take these; the merge journal records them). */
export interface LvmResolutions {
  /** LV name, LV uuid or oVirt disk image id → the node whose version of the whole LV is kept. */
  lvWinners?: Record<string, Side>;
  /** The node whose whole LVM metadata region is kept when both changed it. */
  vgMetadataWinner?: Side;
  /** LVs (name or uuid) of the metadata loser whose blocks the winner's metadata does not hold: give them up (archived). */
  dropLvs?: string[];
  /** false: plain block mode, LVM ignored. */
  lvm?: boolean;
}

export interface LvDoc {
  name: string;
  uuid: string;
  tags: string[];
  extents: Extent[];
  ovirt: null | { role: OvirtRole; image: string | null; parent: string | null; alias: string | null };
  changedBytes: { local: number; peer: number };
  verdict: LvVerdict;
  resolution: LvResolution;
}

/** The `lvm` key of `plan --json` / `merge --json` (a contract: see the README). */
export interface LvmDoc {
  vg: { name: string; uuid: string; extentSize: number; peStart: number };
  metadata: MetadataComparison & { resolution: null | Side };
  lvs: LvDoc[];
  lvConflicts: string[];
  metadataRegionBytes: { local: number; peer: number };
  unallocatedBytes: { local: number; peer: number };
}

export interface LvmPlan {
  doc: LvmDoc;
  /** Plain moves: the destination did not write these blocks. */
  toPeer: Extent[];
  toLocal: Extent[];
  identical: Extent[];
  /** Per-block conflicts left (outside LVs, or inside an unresolved conflicting LV). */
  conflicts: Extent[];
  /** Moves that overwrite blocks the destination wrote (a resolution decided it): archived first. */
  forcedToPeer: Extent[];
  forcedToLocal: Extent[];
  /** Why a merge must refuse until the operator decides; empty when it may go ahead. */
  blockers: string[];
  /** What the plan decided by itself and the operator should know (inbox taken from this node, ...). */
  notes: string[];
}

export interface LvmPlanInput {
  local: LvmView;
  peer: LvmView;
  comparison: MetadataComparison;
  localChanges: Extent[];
  peerChanges: Extent[];
  /** The overlap split by hashing both sides (compareOverlap). */
  identical: Extent[];
  conflicts: Extent[];
  blockSize: number;
  dataSize: number;
}

/** A sanlock delta-lease record's timestamp, or null when the sector holds no valid record. */
export type LeaseParser = (sector: Buffer) => { timestamp: number } | null;

export interface LvmPlanContext {
  local: Endpoint;
  peer: Endpoint;
  parseLease: LeaseParser;
  signal?: AbortSignal;
}

const META = '\0meta';
const FREE = '\0free';
const SECTOR = 512;
const other = (s: Side): Side => (s === 'local' ? 'peer' : 'local');

interface Region {
  off: number;
  end: number;
  owner: string;
}

/** The whole data area cut into the metadata region, each LV's extents and free space, by offset. */
export function regionsOf(view: LvmView, dataSize: number): Region[] {
  const owned: Region[] = [];
  for (const [o, l] of view.metadataRegion) owned.push({ off: o, end: o + l, owner: META });
  for (const lv of view.vg.lvs) for (const [o, l] of lv.extents) owned.push({ off: o, end: o + l, owner: lv.uuid });
  owned.sort((a, b) => a.off - b.off);
  const out: Region[] = [];
  let pos = 0;
  for (const r of owned) {
    const off = Math.max(r.off, pos);
    const stop = Math.min(r.end, dataSize);
    if (off >= stop) continue;
    if (off > pos) out.push({ off: pos, end: off, owner: FREE });
    out.push({ off, end: stop, owner: r.owner });
    pos = stop;
  }
  if (pos < dataSize) out.push({ off: pos, end: dataSize, owner: FREE });
  return out;
}

/** Cuts sorted extents at region borders: [offset, length, owner] in ascending order (one linear sweep). */
export function* attribute(extents: Iterable<Extent>, regions: Region[]): Generator<[number, number, string]> {
  let i = 0;
  for (const [off, len] of extents) {
    let pos = off;
    const stop = off + len;
    while (pos < stop) {
      while (i < regions.length && regions[i].end <= pos) i++;
      if (i === regions.length) {
        yield [pos, stop - pos, FREE]; // beyond the data area: cannot happen for a change set, kept total
        break;
      }
      const r = regions[i];
      const hi = Math.min(stop, r.end);
      yield [pos, hi - pos, r.owner];
      pos = hi;
    }
  }
}

function pushTo(map: Map<string, Extent[]>, key: string, off: number, len: number): void {
  let l = map.get(key);
  if (!l) map.set(key, (l = []));
  push(l, off, len);
}

/** One side's change set sorted into the buckets the plan decides on. */
interface Attribution {
  meta: Extent[];
  /** By LV uuid: blocks this node wrote that both its own map and the governing map give to that LV. */
  lvs: Map<string, Extent[]>;
  free: Extent[];
  /** Blocks this node wrote in its LV that the governing metadata does not give to that LV (lost unless dropped). */
  orphans: Map<string, Extent[]>;
  /** Blocks free in this node's map that the governing metadata allocated: the governing node's bytes win. */
  overridden: Extent[];
}

function attributeSide(changes: Extent[], own: Region[], governing: Region[] | null): Attribution {
  const a: Attribution = { meta: [], lvs: new Map(), free: [], orphans: new Map(), overridden: [] };
  const pieces = attribute(changes, own);
  if (!governing) {
    for (const [o, l, owner] of pieces) {
      if (owner === META) push(a.meta, o, l);
      else if (owner === FREE) push(a.free, o, l);
      else pushTo(a.lvs, owner, o, l);
    }
    return a;
  }
  // The second sweep needs the first one's owner per piece: keep it beside the extent.
  const owners: string[] = [];
  const exts: Extent[] = [];
  for (const [o, l, owner] of pieces) {
    exts.push([o, l]);
    owners.push(owner);
  }
  let k = 0;
  for (const [o, l, gov] of attribute(exts, governing)) {
    while (o >= exts[k][0] + exts[k][1]) k++; // each piece lies inside one first-sweep piece
    const mine = owners[k];
    if (mine === META || gov === META) push(a.meta, o, l);
    else if (mine === gov) (mine === FREE ? push(a.free, o, l) : pushTo(a.lvs, mine, o, l));
    else if (mine === FREE) push(a.overridden, o, l);
    else pushTo(a.orphans, mine, o, l);
  }
  return a;
}

/** True as soon as one block of the extents differs between the nodes (hashes a little at a time). */
async function anyDiffers(ctx: LvmPlanContext, extents: Extent[], blockSize: number): Promise<boolean> {
  if (!extents.length) return false;
  for await (const { local, peer } of hashBothSides(ctx.local, ctx.peer, extents, blockSize, { batchBytes: 1 << 20, concurrency: 1, signal: ctx.signal })) {
    if (!local.digests.equals(peer.digests)) return true;
  }
  return false;
}

const ZERO_SECTOR = Buffer.alloc(SECTOR);

/**
 * sanlock's `ids` LV: one delta-lease record per host and 512-byte sector,
 * rewritten every few seconds by every host, so both nodes always changed it.
 * Each differing sector takes the record with the newer timestamp (a zero
 * sector is a host that never wrote there). null: a sector holds no valid record.
 */
async function sectorMerge(ctx: LvmPlanContext, extents: Extent[]): Promise<{ toPeer: Extent[]; toLocal: Extent[] } | null> {
  const [a, b] = await Promise.all([ctx.local.read(extents), ctx.peer.read(extents)]);
  const toPeer: Extent[] = [];
  const toLocal: Extent[] = [];
  let pos = 0;
  for (const [off, len] of extents) {
    for (let s = 0; s < len; s += SECTOR, pos += SECTOR) {
      const x = a.subarray(pos, pos + SECTOR);
      const y = b.subarray(pos, pos + SECTOR);
      if (x.equals(y)) continue;
      const tx = x.equals(ZERO_SECTOR) ? -Infinity : ctx.parseLease(x)?.timestamp;
      const ty = y.equals(ZERO_SECTOR) ? -Infinity : ctx.parseLease(y)?.timestamp;
      if (tx === undefined || ty === undefined) return null;
      push(tx >= ty ? toPeer : toLocal, off + s, SECTOR);
    }
  }
  return { toPeer, toLocal };
}

/** The VG's LVs by uuid, with the name a selector may use. */
function lvIndex(views: LvmView[]): Map<string, LogicalVolume> {
  const m = new Map<string, LogicalVolume>();
  for (const v of views) for (const lv of v.vg.lvs) if (!m.has(lv.uuid)) m.set(lv.uuid, lv);
  return m;
}

/** The uuids a selector names: LV name (on either node), LV uuid, or oVirt disk image id. */
export function selectLvs(selector: string, lvs: Iterable<LogicalVolume>): string[] {
  const hits: string[] = [];
  for (const lv of lvs) {
    if (lv.name === selector || lv.uuid === selector || (lv.ovirt?.image && lv.ovirt.image === selector)) hits.push(lv.uuid);
  }
  return hits;
}

function resolveSelectors(res: LvmResolutions, all: Map<string, LogicalVolume>, byUuidPeer: Map<string, LogicalVolume>): { winners: Map<string, Side>; drops: Set<string> } {
  const lvs = [...all.values(), ...byUuidPeer.values()];
  const winners = new Map<string, Side>();
  for (const [sel, side] of Object.entries(res.lvWinners ?? {})) {
    if (side !== 'local' && side !== 'peer') throw new RangeError(`--lv ${sel}=${String(side)}: the winner must be 'local' or 'peer'`);
    const hits = selectLvs(sel, lvs);
    if (!hits.length) throw new RangeError(`--lv ${sel}: no LV of that name, uuid or oVirt disk image id in the volume group on either node`);
    for (const u of hits) {
      const had = winners.get(u);
      if (had && had !== side) throw new RangeError(`--lv ${sel}=${side} contradicts another --lv that gives LV ${all.get(u)?.name ?? u} to the ${had} node`);
      winners.set(u, side);
    }
  }
  const drops = new Set<string>();
  for (const sel of res.dropLvs ?? []) {
    const hits = selectLvs(sel, lvs);
    if (!hits.length) throw new RangeError(`--drop-lv ${sel}: no LV of that name or uuid in the volume group on either node`);
    hits.forEach((u) => drops.add(u));
  }
  return { winners, drops };
}

function ovirtDoc(lv: LogicalVolume): LvDoc['ovirt'] {
  if (!lv.ovirt) return null;
  const { role, image, parent, alias } = lv.ovirt;
  return { role, image, parent, alias };
}

/** Everything the LVM layer decides, given the block-level facts of plan(). */
export async function planLvm(input: LvmPlanInput, ctx: LvmPlanContext, res: LvmResolutions = {}): Promise<LvmPlan> {
  const { local, peer, comparison: cmp, blockSize, dataSize } = input;
  const views = { local, peer };
  // The node whose metadata governs the result: the one that moved past the
  // common version (equal texts: either), or the operator's choice; null while
  // both changed it and nobody chose.
  const chosen = res.vgMetadataWinner ?? null;
  const governing: Side | null = chosen ?? (cmp.changedOn === 'peer' ? 'peer' : cmp.changedOn === 'both' ? null : 'local');
  const regions = { local: regionsOf(local, dataSize), peer: regionsOf(peer, dataSize) };
  const gov = governing ? regions[governing] : null;
  // Equal committed texts map every byte alike: each node's own map is the governing one.
  const sameMaps = cmp.changedOn === 'none' && !chosen;
  const att = {
    local: attributeSide(input.localChanges, regions.local, governing === 'local' || sameMaps ? null : gov),
    peer: attributeSide(input.peerChanges, regions.peer, governing === 'peer' || sameMaps ? null : gov),
  };
  const localLvs = lvIndex([local]);
  const peerLvs = lvIndex([peer]);
  const { winners, drops } = resolveSelectors(res, localLvs, peerLvs);

  const out: LvmPlan = { doc: undefined as unknown as LvmDoc, toPeer: [], toLocal: [], identical: [], conflicts: [], forcedToPeer: [], forcedToLocal: [], blockers: [], notes: [] };
  const conflictsByOwner = new Map<string, Extent[]>();
  if (input.conflicts.length) {
    for (const [o, l, owner] of attribute(input.conflicts, gov ?? regions.local)) pushTo(conflictsByOwner, owner, o, l);
  }
  const add = (list: Extent[], ext: Iterable<Extent>): void => {
    for (const e of ext) list.push(e);
  };

  /** Per-block routing, as without LVM: one-sided blocks move, the overlap is identical or a conflict. */
  const perBlock = (lc: Extent[], pc: Extent[], owner: string): void => {
    add(out.toPeer, subtract(lc, pc));
    add(out.toLocal, subtract(pc, lc));
    const ov = [...intersect(lc, pc)];
    if (!ov.length) return;
    const conf = [...intersect(ov, conflictsByOwner.get(owner) ?? [])];
    add(out.conflicts, conf);
    add(out.identical, subtract(ov, conf));
  };
  /** The winner's version of these blocks everywhere: its own writes move plainly, the loser's are overwritten (archived). */
  const wholeFrom = (winner: Side, wc: Extent[], lc: Extent[], dropIdentical: Extent[] = []): void => {
    add(winner === 'local' ? out.toPeer : out.toLocal, subtract(wc, lc));
    add(winner === 'local' ? out.forcedToPeer : out.forcedToLocal, subtract(lc, dropIdentical));
  };

  // LVM metadata region: one node's version as a whole.
  const metaChanges = { local: att.local.meta, peer: att.peer.meta };
  if (governing) {
    const loser = other(governing);
    // The loser's metadata blocks that already hold the winner's bytes (LVM rewrites unchanged sectors) need no archive.
    const { identical: same } = await compareOverlap(ctx.local, ctx.peer, metaChanges[loser], blockSize, { signal: ctx.signal });
    wholeFrom(governing, metaChanges[governing], metaChanges[loser], same);
    if (cmp.changedOn === 'local' || cmp.changedOn === 'peer') {
      out.notes.push(`LVM metadata changed on the ${cmp.changedOn} node only (seqno ${cmp.common?.seqno ?? '?'} → ${cmp[cmp.changedOn].seqno}): its metadata goes to the other node`);
    }
  } else {
    out.blockers.push(`LVM metadata changed on both nodes since ${cmp.common ? `seqno ${cmp.common.seqno}` : 'a version neither ring still holds'}: ` +
      `local ${describeChanges(cmp.changes.local)}; peer ${describeChanges(cmp.changes.peer)}` +
      (cmp.extentConflicts.length ? `; ${cmp.extentConflicts.length} extent range(s) allocated differently` : '') +
      ' (choose --vg-metadata local|peer)');
  }

  // Free space (by the governing map): per block, as without LVM.
  perBlock(att.local.free, att.peer.free, FREE);
  // Blocks free on one node that the governing metadata allocated: its bytes win.
  for (const s of ['local', 'peer'] as const) if (att[s].overridden.length) wholeFrom(other(s), [], att[s].overridden);

  // LVs: the governing node's, then any the other node holds and the governing one does not.
  const govIndex = governing === 'peer' ? peerLvs : localLvs;
  const ordered: LogicalVolume[] = [...govIndex.values()];
  for (const m of [localLvs, peerLvs]) for (const [u, lv] of m) if (!govIndex.has(u)) ordered.push(lv);
  const seen = new Set<string>();
  const lvDocs: LvDoc[] = [];
  for (const lv of ordered) {
    if (seen.has(lv.uuid)) continue;
    seen.add(lv.uuid);
    lvDocs.push(await decideLv(lv));
  }

  async function decideLv(lv: LogicalVolume): Promise<LvDoc> {
    const lc = att.local.lvs.get(lv.uuid) ?? [];
    const pc = att.peer.lvs.get(lv.uuid) ?? [];
    const orphan = { local: att.local.orphans.get(lv.uuid) ?? [], peer: att.peer.orphans.get(lv.uuid) ?? [] };
    const doc: LvDoc = {
      name: lv.name,
      uuid: lv.uuid,
      tags: lv.tags,
      extents: govIndex.get(lv.uuid)?.extents ?? lv.extents,
      ovirt: ovirtDoc(lv),
      changedBytes: { local: totalBytes(lc) + totalBytes(orphan.local), peer: totalBytes(pc) + totalBytes(orphan.peer) },
      verdict: 'unchanged',
      resolution: null,
    };
    // Blocks of this LV the governing metadata does not keep for it: lost unless the operator drops them.
    for (const s of ['local', 'peer'] as const) {
      if (!orphan[s].length) continue;
      if (drops.has(lv.uuid)) {
        doc.resolution = 'dropped';
        wholeFrom(other(s), [], orphan[s]);
      } else {
        out.blockers.push(`LV ${lv.name} (${lv.uuid}) holds ${totalBytes(orphan[s])} bytes the ${s} node wrote where the ${governing} node's LVM metadata has no room for it: ` +
          `keeping the ${governing} metadata loses them; name it with --drop-lv ${lv.name} to give them up (they are archived), or choose the other --vg-metadata`);
      }
    }
    // Orphaned blocks were written by that node too (attributed by its own map): they count for the verdict.
    doc.verdict = joinVerdicts([await verdictOf(lv, lc, pc), lvVerdict(orphan.local.length > 0, orphan.peer.length > 0)]);
    const winner = winners.get(lv.uuid) ?? null;
    const role = lv.ovirt?.role;
    if (doc.resolution === 'dropped' && !lc.length && !pc.length) return doc;
    if (winner) {
      doc.resolution = winner;
      const same = [...subtract(intersect(lc, pc), conflictsByOwner.get(lv.uuid) ?? [])];
      add(out.identical, same);
      wholeFrom(winner, winner === 'local' ? lc : pc, winner === 'local' ? pc : lc, same);
      return doc;
    }
    if (doc.verdict === 'both' && role === 'ids') {
      const merged = await sectorMerge(ctx, [...union(lc, pc)]);
      if (merged) {
        doc.resolution = 'sector-merge';
        add(out.forcedToPeer, merged.toPeer);
        add(out.forcedToLocal, merged.toLocal);
        out.notes.push(`ids (sanlock delta leases): merged per 512-byte sector, the newer record of each host kept`);
        return doc;
      }
    }
    if (doc.verdict === 'both' && (role === 'inbox' || role === 'outbox')) {
      doc.resolution = 'local';
      wholeFrom('local', lc, pc);
      out.notes.push(`${role} (oVirt mailbox, transient): took this node's copy`);
      return doc;
    }
    perBlock(lc, pc, lv.uuid);
    return doc;
  }

  /** both: each node wrote at least one block of the LV whose bytes now differ between the nodes. */
  async function verdictOf(lv: LogicalVolume, lc: Extent[], pc: Extent[]): Promise<LvVerdict> {
    if (!lc.length || !pc.length) return lvVerdict(lc.length > 0, pc.length > 0);
    const ov = [...intersect(lc, pc)];
    // A differing block both wrote counts for both nodes.
    if (ov.length && [...intersect(ov, conflictsByOwner.get(lv.uuid) ?? [])].length) return 'both';
    const l = await anyDiffers(ctx, [...subtract(lc, pc)], blockSize);
    const p = await anyDiffers(ctx, [...subtract(pc, lc)], blockSize);
    return lvVerdict(l, p);
  }

  const lvConflicts = lvDocs.filter((d) => d.verdict === 'both' && d.resolution === null).map((d) => d.name);
  if (lvConflicts.length) {
    out.blockers.push(`LV(s) changed on both nodes: ${lvConflicts.join(', ')} (choose per LV or disk with --lv NAME=local|peer)`);
  }
  const g = views[governing ?? 'local'];
  out.doc = {
    vg: { name: g.vg.name, uuid: g.vg.uuid, extentSize: g.vg.extentSize, peStart: g.pv.peStart },
    metadata: { ...cmp, resolution: chosen },
    lvs: lvDocs,
    lvConflicts,
    metadataRegionBytes: { local: totalBytes(metaChanges.local), peer: totalBytes(metaChanges.peer) },
    unallocatedBytes: { local: totalBytes(att.local.free) + totalBytes(att.local.overridden), peer: totalBytes(att.peer.free) + totalBytes(att.peer.overridden) },
  };
  for (const k of ['toPeer', 'toLocal', 'identical', 'conflicts', 'forcedToPeer', 'forcedToLocal'] as const) out[k] = normalize(out[k]);
  // A block overwritten with archive is not also a plain move, in either direction: the
  // plain lanes run first, so a block in both would be overwritten before it is archived
  // (same direction), or sent one way while the other side's bytes come back (opposite).
  const forced = normalize([...out.forcedToPeer, ...out.forcedToLocal]);
  out.toPeer = [...subtract(out.toPeer, forced)];
  out.toLocal = [...subtract(out.toLocal, forced)];
  return out;
}

function describeChanges(changes: MetadataComparison['changes']['local']): string {
  if (!changes.length) return 'no LV changes';
  return changes.map((c) => `${c.kind} ${c.lv}`).join(', ');
}


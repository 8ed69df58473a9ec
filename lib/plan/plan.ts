// The plan of a bidirectional resync: which blocks go which way, which blocks
// both sides wrote identically, and which are real conflicts.
import { BisyncError, ErrorCode } from '../device/errors';
import { Extent, batches, intersect, normalize, subtract, totalBytes, union } from '../device/extent';
import { pipelined } from '../device/pipeline';
import { compareMetadata, commonVersion, parseDeltaLease, type VersionId } from '../lvm';
import { LvmView, VolumeGroup, dmName } from '../lvm/types';
import type { BlockHashes, Endpoint, EndpointInfo } from '../transport/endpoint';
import { Classification, classify, uuidsOf } from './classify';
import { LvmDoc, LvmResolutions, planLvm } from './lvm';

export interface SideSummary {
  host: string;
  path: string;
  currentUuid: string;
  bitmapUuid: string;
  /** Bytes this side's change set covers (bitmap plus activity log). */
  changedBytes: number;
  /** Meta-data was unclean (a crashed primary): its activity log counted. */
  unclean: boolean;
}

export interface Plan extends Classification {
  dataSize: number;
  blockSize: number;
  local: SideSummary;
  peer: SideSummary;
  /** Blocks only this node changed: they go to the peer. */
  toPeer: Extent[];
  /** Blocks only the peer changed: they come here. */
  toLocal: Extent[];
  /** Each side's change set as read from its meta-data. */
  localChanges: Extent[];
  peerChanges: Extent[];
  /** Written on both sides with the same bytes: nothing to do. */
  identicalOverlap: Extent[];
  /** Written on both sides with different bytes (outside LVs, or inside an LV written on both nodes). */
  conflicts: Extent[];
  /** Blocks the destination also wrote, overwritten by a resolution (an LV, VG metadata or sector winner): archived first. */
  forcedToPeer: Extent[];
  forcedToLocal: Extent[];
  toPeerBytes: number;
  toLocalBytes: number;
  identicalOverlapBytes: number;
  conflictBytes: number;
  forcedToPeerBytes: number;
  forcedToLocalBytes: number;
  /** The LVM view of the plan (the `lvm` key of the JSON), null when the device holds no LVM2 PV on both nodes. */
  lvm: LvmDoc | null;
  /** Why a merge must refuse until the operator decides (LV or metadata conflicts, LVs to drop). */
  blockers: string[];
  /** What the plan decided by itself, and warnings. */
  notes: string[];
}

export interface PlanOptions extends LvmResolutions {
  /** Overlap bytes hashed per request (default 64 MiB). */
  hashBatchBytes?: number;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (phase: 'overlap', doneBytes: number, totalBytes: number) => void;
  /**
   * Online: this node's device-mapper open counts (dm name -> count). With them, the blocks
   * in doubt of a live survivor (hot activity-log extents) are settled per LV; without them
   * they all count as this node's.
   */
  openCounts?: () => Promise<Map<string, number>>;
}

export async function plan(local: Endpoint, peer: Endpoint, opts: PlanOptions = {}): Promise<Plan> {
  // Info, change sets and LVM views are reads that do not depend on one another: asked together
  // they cost the agent's link one round trip instead of three. Their answers are taken in the
  // order they were before, so a pair that info refuses is refused with info's error, and the
  // LVM views (and their errors) count only for a split brain.
  const infos = Promise.all([local.info(), peer.info()]);
  const changes = Promise.all([local.changeSet(), peer.changeSet()]);
  const lvmNotes: string[] = [];
  const lvm = lvmViews(local, peer, opts, lvmNotes);
  for (const unused of [changes, lvm]) unused.catch(() => undefined); // awaited below unless info fails first
  const [li, pi] = await infos;
  const { dataSize, blockSize } = checkCompatible(li, pi);
  const c = classify(uuidsOf(li.metadata!), uuidsOf(pi.metadata!));
  let [localChanges, peerChanges] = await changes;
  const none = { forcedToPeer: [] as Extent[], forcedToLocal: [] as Extent[], forcedToPeerBytes: 0, forcedToLocalBytes: 0, lvm: null, blockers: [] as string[], notes: [] as string[] };
  let views: Awaited<typeof lvm> = null;
  if (c.verdict === 'split-brain') {
    views = await lvm;
    none.notes.push(...lvmNotes);
  }
  if (views) localChanges = await settleDoubt(local, localChanges, views.local, opts, none.notes);
  const base = {
    ...c,
    dataSize,
    blockSize,
    local: summary(li, localChanges),
    peer: summary(pi, peerChanges),
    localChanges,
    peerChanges,
  };
  if (c.verdict !== 'split-brain') return { ...base, ...none, ...oneWay(c, dataSize, localChanges, peerChanges) };

  const overlap = [...intersect(localChanges, peerChanges)];
  const { identical, conflicts } = await compareOverlap(local, peer, overlap, blockSize, opts);
  if (views) {
    const common = commonVersion(views.local, views.peer);
    const comparison = compareMetadata(views.local, views.peer, await ancestor(local, views, common, none.notes), common);
    const l = await planLvm(
      { local: views.local, peer: views.peer, comparison, localChanges, peerChanges, identical, conflicts, blockSize, dataSize },
      { local, peer, parseLease: parseDeltaLease, signal: opts.signal },
      opts,
    );
    return {
      ...base,
      ...lists(l.toPeer, l.toLocal, l.identical, l.conflicts, l.forcedToPeer, l.forcedToLocal),
      lvm: l.doc,
      blockers: l.blockers,
      notes: [...none.notes, ...l.notes],
    };
  }
  return { ...base, ...none, ...lists([...subtract(localChanges, peerChanges)], [...subtract(peerChanges, localChanges)], identical, conflicts, [], []) };
}

function lists(toPeer: Extent[], toLocal: Extent[], identical: Extent[], conflicts: Extent[], forcedToPeer: Extent[], forcedToLocal: Extent[]) {
  return {
    toPeer,
    toLocal,
    identicalOverlap: identical,
    conflicts,
    forcedToPeer,
    forcedToLocal,
    toPeerBytes: totalBytes(toPeer),
    toLocalBytes: totalBytes(toLocal),
    identicalOverlapBytes: totalBytes(identical),
    conflictBytes: totalBytes(conflicts),
    forcedToPeerBytes: totalBytes(forcedToPeer),
    forcedToLocalBytes: totalBytes(forcedToLocal),
  };
}

/**
 * Both nodes' LVM views when the data area holds the same LVM2 PV on both;
 * null for plain block mode (no PV, another PV on each side, or `lvm: false`),
 * with a note saying why when it is not the obvious case.
 */
async function lvmViews(local: Endpoint, peer: Endpoint, opts: PlanOptions, notes: string[]): Promise<{ local: LvmView; peer: LvmView } | null> {
  const resolving = opts.lvWinners && Object.keys(opts.lvWinners).length > 0 || opts.vgMetadataWinner !== undefined || (opts.dropLvs?.length ?? 0) > 0;
  if (opts.lvm === false) {
    if (resolving) throw new RangeError('--no-lvm cannot be combined with --lv, --vg-metadata or --drop-lv');
    notes.push('warning: --no-lvm: LVM ignored, plain block mode: an LV written on both nodes in different blocks is merged block by block and may end up matching neither node');
    return null;
  }
  // The rings (history) are read only when the committed texts differ: an oVirt metadata area is 128 MiB.
  let [l, p] = await Promise.all([local.lvm({ history: false }), peer.lvm({ history: false })]);
  if (l && p && (l.committed.seqno !== p.committed.seqno || l.committed.checksum !== p.committed.checksum)) [l, p] = await Promise.all([local.lvm(), peer.lvm()]);
  const plain = !l || !p || l.pv.uuid !== p.pv.uuid || l.vg.uuid !== p.vg.uuid;
  if (plain && resolving) throw new RangeError(`--lv, --vg-metadata and --drop-lv need the same LVM2 PV and VG on both nodes; ${!l && !p ? 'neither device holds one' : 'the nodes differ'}`);
  if (!l && !p) return null;
  if (!l || !p) notes.push(`warning: only the ${l ? 'local' : 'peer'} device holds an LVM2 PV: planned in plain block mode`);
  else if (plain) notes.push(`warning: the nodes hold different LVM2 PVs or VGs (${l.pv.uuid}/${l.vg.name} vs ${p.pv.uuid}/${p.vg.name}): planned in plain block mode`);
  return plain ? null : { local: l!, peer: p! };
}

/**
 * Online, this node's change set is its on-disk bitmap (certain) plus the live activity
 * log's hot 4 MiB extents (in doubt: DRBD writes a bitmap page out only when its extent
 * leaves the AL). Doubt is settled by facts only: an LV that is not open here and in which
 * the bitmap shows no write of this node is taken as unwritten here, so its blocks in doubt
 * leave this node's change set (what the peer wrote there is the peer's). Doubt in an open
 * LV, in an LV the bitmap shows written, in the metadata region or in free space stays this
 * node's, and the usual rules make a conflict of it where the peer wrote different bytes.
 */
async function settleDoubt(local: Endpoint, changes: Extent[], view: LvmView, opts: PlanOptions, notes: string[]): Promise<Extent[]> {
  const doubt = (await local.doubtfulChanges?.()) ?? [];
  if (!doubt.length || !opts.openCounts) return changes;
  const open = await opts.openCounts();
  const certain = [...subtract(changes, doubt)];
  const released: Extent[] = [];
  const names: string[] = [];
  for (const lv of view.vg.lvs) {
    if ((open.get(dmName(view.vg.name, lv.name)) ?? 0) > 0 || totalBytes(intersect(certain, lv.extents)) > 0) continue;
    const inLv = [...intersect(doubt, lv.extents)];
    if (!inLv.length) continue;
    released.push(...inLv);
    names.push(lv.name);
  }
  if (!released.length) return changes;
  const settled = normalize(released);
  notes.push(`${totalBytes(settled)} bytes in this node's hot activity-log extents (not in its bitmap) lie in LVs that are not open here and that its bitmap shows unwritten (${names.join(', ')}): counted as unchanged here`);
  return [...subtract(changes, settled)];
}

/** The VG both nodes last agreed on, read from this node's ring; null when no ring holds one any more. */
async function ancestor(local: Endpoint, views: { local: LvmView; peer: LvmView }, common: VersionId | null, notes: string[]): Promise<VolumeGroup | null> {
  if (!common) return null;
  for (const v of [views.local, views.peer]) if (v.committed.seqno === common.seqno && v.committed.checksum === common.checksum) return v.vg;
  try {
    return await local.lvmVersion(common.seqno, common.checksum);
  } catch (e) {
    notes.push(`the common LVM metadata version (seqno ${common.seqno}) could not be read: ${(e as Error).message}`);
    return null;
  }
}

/** For the one-way verdicts: what DRBD itself will resync, and which way. */
function oneWay(c: Classification, dataSize: number, localChanges: Extent[], peerChanges: Extent[]) {
  const all: Extent[] = dataSize > 0 ? [[0, dataSize]] : [];
  const moving = c.fullSync ? all : [...union(localChanges, peerChanges)];
  const toPeer = c.verdict === 'local-ahead' ? moving : [];
  const toLocal = c.verdict === 'peer-ahead' ? moving : [];
  return {
    toPeer,
    toLocal,
    identicalOverlap: [] as Extent[],
    conflicts: [] as Extent[],
    toPeerBytes: totalBytes(toPeer),
    toLocalBytes: totalBytes(toLocal),
    identicalOverlapBytes: 0,
    conflictBytes: 0,
  };
}

function checkCompatible(li: EndpointInfo, pi: EndpointInfo): { dataSize: number; blockSize: number } {
  for (const [side, i] of [['local', li], ['peer', pi]] as const) {
    if (!i.metadata) {
      throw new BisyncError(ErrorCode.BAD_METADATA, `${side} device '${i.path}' on ${i.hostname} has no DRBD meta-data`, {
        hint: 'give the DRBD backing device (with its meta-data), not the /dev/drbdN device',
      });
    }
  }
  if (li.dataSize !== pi.dataSize) {
    throw new BisyncError(ErrorCode.SIZE_MISMATCH,
      `usable sizes differ: local '${li.path}' has ${li.dataSize} bytes, peer '${pi.path}' on ${pi.hostname} has ${pi.dataSize} bytes`,
      { hint: 'both nodes must be backing devices of the same DRBD resource and volume' });
  }
  const bs = li.metadata!.bytesPerBit;
  if (bs !== pi.metadata!.bytesPerBit) {
    throw new BisyncError(ErrorCode.BAD_METADATA,
      `bitmap granularity differs: local '${li.path}' has ${bs} bytes per bit, peer '${pi.path}' on ${pi.hostname} has ${pi.metadata!.bytesPerBit}`);
  }
  return { dataSize: li.dataSize, blockSize: bs };
}

function summary(i: EndpointInfo, changes: Extent[]): SideSummary {
  const md = i.metadata!;
  return {
    host: i.hostname,
    path: i.path,
    currentUuid: md.uuids.current,
    bitmapUuid: md.uuids.bitmap,
    changedBytes: totalBytes(changes),
    unclean: !md.clean && md.alExtents.length > 0,
  };
}

/** Per-block digests of the same extents on both nodes, batch by batch, in order. */
export async function* hashBothSides(local: Endpoint, peer: Endpoint, extents: Iterable<Extent>, blockSize: number, opts: { batchBytes?: number; concurrency?: number; signal?: AbortSignal } = {}): AsyncGenerator<{ batch: Extent[]; local: BlockHashes; peer: BlockHashes }> {
  const work = batches(extents, Math.max(blockSize, opts.batchBytes ?? 64 << 20));
  const hashBoth = (batch: Extent[]) => Promise.all([local.hash(batch, blockSize), peer.hash(batch, blockSize)]);
  for await (const [batch, [a, b]] of pipelined(work, hashBoth, { concurrency: opts.concurrency ?? 2, signal: opts.signal })) {
    yield { batch, local: a, peer: b };
  }
}

/** Hashes the overlap on both sides at bitmap granularity and splits it into identical and conflicting blocks. */
export async function compareOverlap(local: Endpoint, peer: Endpoint, overlap: Extent[], blockSize: number, opts: PlanOptions = {}): Promise<{ identical: Extent[]; conflicts: Extent[] }> {
  const identical: Extent[] = [];
  const conflicts: Extent[] = [];
  const total = totalBytes(overlap);
  let done = 0;
  for await (const { batch, local: a, peer: b } of hashBothSides(local, peer, overlap, blockSize, { batchBytes: opts.hashBatchBytes, concurrency: opts.concurrency, signal: opts.signal })) {
    let i = 0;
    for (const [off, len] of batch) {
      for (let pos = off; pos < off + len; pos += blockSize, i++) {
        const n = Math.min(blockSize, off + len - pos);
        const same = a.digests.compare(b.digests, i * 16, i * 16 + 16, i * 16, i * 16 + 16) === 0;
        push(same ? identical : conflicts, pos, n);
      }
    }
    done += totalBytes(batch);
    opts.onProgress?.('overlap', done, total);
  }
  return { identical, conflicts };
}

/** Appends [off, len] to a sorted list, joining it to the last extent when they touch. */
export function push(list: Extent[], off: number, len: number): void {
  const last = list[list.length - 1];
  if (last && last[0] + last[1] === off) list[list.length - 1] = [last[0], last[1] + len];
  else list.push([off, len]);
}

/** The plan's JSON document (the `plan --json` contract). */
export function planDocument(p: Plan): Record<string, unknown> {
  return {
    verdict: p.verdict,
    rule: p.rule,
    drbd9Rule: p.drbd9Rule,
    reason: p.reason,
    fullSync: p.fullSync,
    dataSize: p.dataSize,
    blockSize: p.blockSize,
    local: p.local,
    peer: p.peer,
    toPeerBytes: p.toPeerBytes,
    toLocalBytes: p.toLocalBytes,
    identicalOverlapBytes: p.identicalOverlapBytes,
    conflictBytes: p.conflictBytes,
    conflicts: p.conflicts,
    forcedToPeerBytes: p.forcedToPeerBytes,
    forcedToLocalBytes: p.forcedToLocalBytes,
    blockers: p.blockers,
    notes: p.notes,
    lvm: p.lvm,
  };
}

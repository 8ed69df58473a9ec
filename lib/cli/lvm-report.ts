// The human LVM part of `plan` and `merge`: grouped the way an oVirt
// administrator decides, by VM disk (image id, volume chain, alias), then the
// domain's special LVs by role, the LVM metadata, and unallocated space.
import { type LvDoc, type LvmDoc, type LvVerdict, joinVerdicts } from '../plan/lvm';
import { formatBytes, println } from './output';

const ROLES: Record<string, string> = {
  metadata: 'oVirt volume metadata slots',
  ids: 'sanlock delta leases, one sector per host (merged per sector, newer record wins)',
  inbox: 'oVirt mailbox to the SPM (transient: this node\'s copy is taken)',
  outbox: 'oVirt mailbox from the SPM (transient: this node\'s copy is taken)',
  leases: 'sanlock paxos leases (SPM and volume leases): keep the node that keeps running',
  xleases: 'VM and external leases: keep the node that keeps running',
  master: 'master filesystem of the SPM: pick one node whole',
};
const BLANK = '00000000-0000-0000-0000-000000000000';

const changed = (d: LvDoc): boolean => d.changedBytes.local > 0 || d.changedBytes.peer > 0;

function status(verdict: LvVerdict, resolution: LvDoc['resolution']): string {
  const v = verdict === 'both' ? 'BOTH nodes changed it' : verdict;
  if (resolution === 'dropped') return `${v}; dropped (its blocks on the metadata loser are archived)`;
  if (resolution === 'sector-merge') return `${v}; merged per 512-byte sector`;
  if (resolution) return `${v}; keeps the ${resolution} node's version (the other's blocks archived)`;
  return verdict === 'both' ? `${v}: CONFLICT, choose --lv NAME=local|peer` : v;
}

function bytes(d: { changedBytes: { local: number; peer: number } }): string {
  return `changed local ${formatBytes(d.changedBytes.local)}, peer ${formatBytes(d.changedBytes.peer)}`;
}

/** The disk's verdict from its volumes': both if any is, or if the nodes changed different volumes. */
function diskVerdict(vols: LvDoc[]): LvVerdict {
  return joinVerdicts(vols.map((x) => x.verdict));
}

/** Base volume first, each child after its parent. */
function chain(vols: LvDoc[]): LvDoc[] {
  const byParent = new Map<string, LvDoc[]>();
  const ids = new Set(vols.map((v) => v.name));
  for (const v of vols) {
    const parent = v.ovirt?.parent && v.ovirt.parent !== BLANK && ids.has(v.ovirt.parent) ? v.ovirt.parent : '';
    byParent.set(parent, [...(byParent.get(parent) ?? []), v]);
  }
  const out: LvDoc[] = [];
  const walk = (p: string): void => {
    for (const v of byParent.get(p) ?? []) {
      out.push(v);
      walk(v.name);
    }
  };
  walk('');
  return out.length === vols.length ? out : vols;
}

export function printLvm(doc: LvmDoc | null, notes: string[], blockers: string[]): void {
  if (!doc) {
    for (const n of notes) println(n);
    return;
  }
  const ovirt = doc.lvs.some((l) => l.ovirt);
  println(`LVM: VG ${doc.vg.name} (${doc.vg.uuid})${ovirt ? ', an oVirt storage domain' : ''}, extents of ${formatBytes(doc.vg.extentSize)} from byte ${doc.vg.peStart}`);
  const disks = new Map<string, LvDoc[]>();
  const special: LvDoc[] = [];
  const plain: LvDoc[] = [];
  for (const lv of doc.lvs) {
    if (lv.ovirt?.role === 'volume' && lv.ovirt.image) disks.set(lv.ovirt.image, [...(disks.get(lv.ovirt.image) ?? []), lv]);
    else if (lv.ovirt && lv.ovirt.role !== 'volume') special.push(lv);
    else plain.push(lv);
  }
  let quiet = 0;
  for (const [image, vols] of disks) {
    if (!vols.some(changed)) {
      quiet++;
      continue;
    }
    const alias = vols.find((v) => v.ovirt?.alias)?.ovirt?.alias;
    const res = [...new Set(vols.map((v) => v.resolution).filter((r) => r))];
    println(`  disk ${image}${alias ? ` "${alias}"` : ''}: ${status(diskVerdict(vols), res.length === 1 ? res[0] : null)}`);
    for (const v of chain(vols)) {
      const parent = v.ovirt?.parent && v.ovirt.parent !== BLANK ? `, parent ${v.ovirt.parent}` : ', base';
      println(`    volume ${v.name}${parent}: ${bytes(v)}, ${status(v.verdict, v.resolution)}`);
    }
  }
  for (const lv of plain) {
    if (!changed(lv)) {
      quiet++;
      continue;
    }
    println(`  LV ${lv.name} (${lv.uuid}): ${bytes(lv)}, ${status(lv.verdict, lv.resolution)}`);
  }
  if (quiet) println(`  ${quiet} ${ovirt ? 'disk(s) and LV(s)' : 'LV(s)'} unchanged on both nodes`);
  for (const lv of special.filter(changed)) println(`  special LV ${lv.name} (${ROLES[lv.ovirt!.role] ?? lv.ovirt!.role}): ${bytes(lv)}, ${status(lv.verdict, lv.resolution)}`);
  const m = doc.metadata;
  const meta = m.changedOn === 'none' ? 'identical on both nodes'
    : m.changedOn === 'both' ? `changed on BOTH nodes since ${m.common ? `seqno ${m.common.seqno}` : 'a version no ring still holds'}${m.resolution ? `; keeps the ${m.resolution} node's metadata` : ': CONFLICT, choose --vg-metadata local|peer'}`
      : `changed on the ${m.changedOn} node only (seqno ${m.common?.seqno ?? '?'} → ${m[m.changedOn].seqno}): taken from it`;
  println(`  LVM metadata: local seqno ${m.local.seqno}, peer seqno ${m.peer.seqno}: ${meta}`);
  for (const side of ['local', 'peer'] as const) {
    if (m.changes[side].length) println(`    ${side} changed: ${m.changes[side].map((c) => `${c.kind} ${c.lv}`).join(', ')}`);
  }
  for (const [pe, n, l, p] of m.extentConflicts.slice(0, 20)) println(`    PE ${pe}-${pe + n - 1}: local ${l ?? 'free'}, peer ${p ?? 'free'}`);
  if (m.extentConflicts.length > 20) println(`    ... and ${m.extentConflicts.length - 20} more extent ranges allocated differently`);
  println(`  metadata region changed: local ${formatBytes(doc.metadataRegionBytes.local)}, peer ${formatBytes(doc.metadataRegionBytes.peer)}; unallocated space changed: local ${formatBytes(doc.unallocatedBytes.local)}, peer ${formatBytes(doc.unallocatedBytes.peer)}`);
  for (const n of notes) println(n);
  for (const b of blockers) println(`refused: ${b}`);
}

/** `--lv NAME=local|peer` (repeatable) into the library's lvWinners. */
export function parseLvWinners(values: string[] | undefined): Record<string, 'local' | 'peer'> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, 'local' | 'peer'> = {};
  for (const v of values) {
    const m = /^(.+)=(local|peer)$/.exec(v);
    if (!m) throw new RangeError(`--lv must be NAME=local or NAME=peer (NAME: LV name, LV uuid or oVirt disk image id), got '${v}'`);
    if (out[m[1]] && out[m[1]] !== m[2]) throw new RangeError(`--lv ${m[1]} given twice with different winners`);
    out[m[1]] = m[2] as 'local' | 'peer';
  }
  return out;
}

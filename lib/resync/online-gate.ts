// What makes it safe to write the other node's changes into the survivor's live
// DRBD device while its VMs run: nothing on the survivor may use those blocks.
// With LVM on the device that is a per-LV fact: every block written must lie in
// an LV that is not open here (device-mapper open count) or in unallocated
// space, and LVM metadata may only come from the peer when this node's did not
// change and no LV active here changes its layout. Without LVM only the
// operator knows: `--no-lvm` is that statement.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BisyncError, ErrorCode } from '../device/errors';
import { Extent, intersect, totalBytes } from '../device/extent';
import { lvmLabelSector } from '../lvm/label';
import { LvmView, dmName } from '../lvm/types';
import type { LvmDoc } from '../plan/lvm';
import type { Endpoint } from '../transport/endpoint';

const exec = promisify(execFile);

export { dmName };

/** Every device-mapper device on this host and its open count, from `dmsetup info -c`. */
export async function dmOpenCounts(): Promise<Map<string, number>> {
  let out: string;
  try {
    ({ stdout: out } = await exec('dmsetup', ['info', '-c', '--noheadings', '-o', 'name,open', '--separator', '|'], { encoding: 'utf8' }));
  } catch (e) {
    const x = e as NodeJS.ErrnoException & { stderr?: string };
    throw new BisyncError(ErrorCode.REFUSED, `cannot tell which LVs are open on this node: \`dmsetup info\` failed: ${x.code === 'ENOENT' ? 'dmsetup is not installed' : (x.stderr ?? x.message).trim()}`, {
      hint: 'install dmsetup (device-mapper tools); without it the online merge cannot protect the LVs in use here',
    });
  }
  return parseDmInfo(out);
}

export function parseDmInfo(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.trim() || /^No devices found/.test(line)) continue;
    const i = line.lastIndexOf('|');
    const n = Number(line.slice(i + 1).trim());
    if (i < 0 || !Number.isInteger(n)) throw new BisyncError(ErrorCode.BAD_METADATA, `unexpected \`dmsetup info\` line ${JSON.stringify(line)}`);
    m.set(line.slice(0, i).trim(), n);
  }
  return m;
}

export interface OnlineGateOptions {
  /** The operator states that no LVM is on the device and nothing on this node uses the blocks the peer changed. */
  noLvm: boolean;
  /** What holds this node's DRBD device (sysfs holders, mounts), for the messages. */
  users?: string[];
  /** device-mapper devices here and their open counts (default: dmsetup). */
  openCounts?: () => Promise<Map<string, number>>;
  /** The check after the copy: the peer's blocks are already written, the hand-back not done yet. */
  afterCopy?: boolean;
}

/**
 * Refuses (ERR_REFUSED, nothing written) unless the writes into the live device are safe by the
 * rules above. `extents` are the blocks the merge would write on this node; `lvm` the plan's LVM
 * view (null in plain block mode). Returns what the operator must know (e.g. how LVM re-reads).
 */
export async function checkOnlineWrites(local: Endpoint, peer: Endpoint, lvm: LvmDoc | null, extents: Extent[], opts: OnlineGateOptions): Promise<string[]> {
  if (lvm) return opts.afterCopy ? stillUnused(local, lvm, extents, opts) : checkLvmWrites(local, lvm, extents, opts);
  const [li, pi] = await Promise.all([local.info(), peer.info()]);
  for (const [side, ep, info] of [['this node', local, li], ['the peer', peer, pi]] as const) {
    const sector = lvmLabelSector(await ep.read([[0, 4096]]));
    if (sector === undefined) continue;
    if (opts.noLvm) {
      throw new BisyncError(ErrorCode.REFUSED,
        `--no-lvm, but '${info.path}' on ${side} (${info.hostname}) carries an LVM2 physical volume label (sector ${sector}): its LVs are in use`, {
          hint: 'drop --no-lvm; an LVM volume group on the DRBD device needs the offline merge (drbdadm down on both nodes)',
        });
    }
    // The plan found no common VG (one side only, or different PVs): nothing attributes the blocks to LVs.
    throw new BisyncError(ErrorCode.REFUSED,
      `online merge refused: '${info.path}' on ${side} (${info.hostname}) is an LVM2 physical volume (label in sector ${sector}), but the two nodes do not hold the same VG, so the peer's ${totalBytes(extents)} bytes cannot be attributed to LVs`, {
        hint: 'use the offline merge (drbdadm down on both nodes, then drbd-bisync merge without --online)',
      });
  }
  if (!extents.length || opts.noLvm) return [];
  const users = opts.users?.length ? ` (in use here by: ${opts.users.join(', ')})` : '';
  throw new BisyncError(ErrorCode.REFUSED,
    `online merge refused: '${li.path}' has no LVM, so nothing tells whether the ${totalBytes(extents)} bytes the peer changed are unused on this node${users}`, {
      hint: 'if nothing on this node uses those blocks (see "Online merge" in the README), run again with --no-lvm; else use the offline merge',
    });
}

/**
 * After the copy: no LV that received the peer's blocks is open here now. The LVs are this
 * node's as the plan read them plus the peer's (whose metadata may just have been copied
 * here, with LVs this node did not have), each with the layout now on the disk. An LV that
 * was opened and closed again during the copy is not seen.
 */
async function stillUnused(local: Endpoint, doc: LvmDoc, extents: Extent[], opts: OnlineGateOptions): Promise<string[]> {
  const view = await local.lvm();
  const lvs = new Map<string, { name: string; extents: Extent[] }>();
  for (const lv of view?.vg.lvs ?? []) lvs.set(lv.uuid, { name: lv.name, extents: lv.extents });
  for (const d of doc.lvs) if (doc.metadata.changedOn === 'peer' || !lvs.has(d.uuid)) lvs.set(d.uuid, { name: d.name, extents: d.extents });
  const alias = new Map(doc.lvs.map((d) => [d.uuid, d.ovirt?.alias]));
  const open = await (opts.openCounts ?? dmOpenCounts)();
  const busy: string[] = [];
  for (const [uuid, lv] of lvs) {
    const count = open.get(dmName(doc.vg.name, lv.name)) ?? 0;
    const hit = totalBytes(intersect(extents, lv.extents));
    const a = alias.get(uuid);
    if (hit && count > 0) busy.push(`${a ? `${lv.name} (${a})` : lv.name}: ${hit} bytes, open ${count} time(s)`);
  }
  if (!busy.length) return [];
  // Not a refusal (exit 1 says nothing changed): the copy is done, only the hand-back is held back.
  throw new BisyncError(ErrorCode.VERIFY,
    `online merge stopped before the hand-back: LV(s) of VG ${doc.vg.name} that the peer's changes were copied into are open on this node now: ${busy.join('; ')}`, {
      hint: 'stop what opened them here (the VM) and run the merge again: it resumes from its journal; if that VM wrote into them, the LV is then changed on both nodes and needs --lv NAME=local|peer --archive DIR',
    });
}

/** The LVM rules: nothing written into an LV open here; peer metadata only over unchanged local metadata and unchanged active layouts. */
async function checkLvmWrites(local: Endpoint, doc: LvmDoc, extents: Extent[], opts: OnlineGateOptions): Promise<string[]> {
  const vg = doc.vg.name;
  const changed = doc.metadata.changedOn;
  if (changed === 'both') {
    throw new BisyncError(ErrorCode.REFUSED,
      `online merge refused: both nodes changed the LVM metadata of VG ${vg} (seqno ${doc.metadata.local.seqno} here, ${doc.metadata.peer.seqno} on the peer): this node's running LVs cannot be re-mapped under them`, {
        hint: 'use the offline merge (drbdadm down on both nodes), which can choose with --vg-metadata',
      });
  }
  const view: LvmView | null = await local.lvm();
  if (!view) throw new BisyncError(ErrorCode.REFUSED, `online merge refused: the plan saw VG ${vg}, but this node's live device no longer shows it`);
  const open = await (opts.openCounts ?? dmOpenCounts)();
  const busy: string[] = [];
  const relaid: string[] = [];
  for (const lv of view.vg.lvs) {
    const count = open.get(dmName(view.vg.name, lv.name));
    if (count === undefined) continue; // not active here: nothing maps it
    const name = lv.ovirt?.alias ? `${lv.name} (${lv.ovirt.alias})` : lv.name;
    const hit = totalBytes(intersect(extents, lv.extents));
    if (hit && count > 0) busy.push(`${name}: ${hit} bytes, open ${count} time(s)`);
    if (changed === 'peer') {
      const theirs = doc.lvs.find((d) => d.uuid === lv.uuid);
      if (!theirs || JSON.stringify(theirs.extents) !== JSON.stringify(lv.extents)) relaid.push(`${name}${theirs ? ' (moved or resized)' : ' (removed)'}`);
    }
  }
  if (busy.length) {
    throw new BisyncError(ErrorCode.REFUSED,
      `online merge refused: the peer changed LV(s) of VG ${vg} that are open on this node: ${busy.join('; ')}; nothing written`, {
        hint: 'stop what uses them here (the VM) and run again, or keep this node\'s version with --lv NAME=local --archive DIR (the peer\'s version is archived)',
      });
  }
  if (relaid.length) {
    throw new BisyncError(ErrorCode.REFUSED,
      `online merge refused: the peer's LVM metadata of VG ${vg} changes LV(s) active on this node: ${relaid.join(', ')}`, {
        hint: `deactivate them here (lvchange -an ${vg}/LV) and run again, or use the offline merge`,
      });
  }
  if (changed !== 'peer') return [];
  return [`the peer's LVM metadata of VG ${vg} (seqno ${doc.metadata.peer.seqno}) is copied here; lvm2 2.03 commands read it from the disk on their next run (with lvmetad, lvm2 2.02: \`pvscan --cache\` first). LVs the peer created are not active here: \`lvchange -ay ${vg}/LV\` when needed`];
}

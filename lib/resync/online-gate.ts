// What makes it safe to write the other node's changes into the survivor's live
// DRBD device while its VMs run: nothing on the survivor may use those blocks.
// With LVM on the device that is a per-LV fact (open LVs, LVM metadata); this
// build has no LV attribution yet, so an LVM physical volume is refused online.
// Without LVM only the operator knows: `--no-lvm` is that statement.
import { BisyncError, ErrorCode } from '../device/errors';
import { Extent, totalBytes } from '../device/extent';
import type { Endpoint } from '../transport/endpoint';

/** LVM2's label: "LABELONE" at the start of one of the first four 512-byte sectors, type "LVM2 001" at byte 24. */
export function lvmLabelSector(head: Buffer): number | undefined {
  for (let s = 0; s < 4 && (s + 1) * 512 <= head.length; s++) {
    const o = s * 512;
    if (head.toString('latin1', o, o + 8) === 'LABELONE' && head.toString('latin1', o + 24, o + 32) === 'LVM2 001') return s;
  }
  return undefined;
}

export interface OnlineGateOptions {
  /** The operator states that no LVM is on the device and nothing on this node uses the blocks the peer changed. */
  noLvm: boolean;
  /** What holds this node's DRBD device (sysfs holders, mounts), for the messages. */
  users?: string[];
}

/**
 * Refuses (ERR_REFUSED, nothing written) unless the writes into the live device are safe by the
 * rules above. `extents` are the blocks the merge would write on this node.
 */
export async function checkOnlineWrites(local: Endpoint, peer: Endpoint, extents: Extent[], opts: OnlineGateOptions): Promise<void> {
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
    throw new BisyncError(ErrorCode.REFUSED,
      `online merge refused: '${info.path}' on ${side} (${info.hostname}) is an LVM2 physical volume (label in sector ${sector}), and this build cannot yet tell which LVs the peer's ${totalBytes(extents)} bytes belong to or whether they are open here`, {
        hint: 'use the offline merge (drbdadm down on both nodes, then drbd-bisync merge without --online)',
      });
  }
  if (!extents.length || opts.noLvm) return;
  const users = opts.users?.length ? ` (in use here by: ${opts.users.join(', ')})` : '';
  throw new BisyncError(ErrorCode.REFUSED,
    `online merge refused: '${li.path}' has no LVM, so nothing tells whether the ${totalBytes(extents)} bytes the peer changed are unused on this node${users}`, {
      hint: 'if nothing on this node uses those blocks (see "Online merge" in the README), run again with --no-lvm; else use the offline merge',
    });
}

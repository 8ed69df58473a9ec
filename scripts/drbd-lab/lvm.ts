// LVM inside the lab guests: a VG on /dev/drbd0, LVs activated through the
// guest's device-mapper (dm_mod is in the lab's module list). The guests run
// the host's lvm2 from the read-only root, so LVM gets its own lvm.conf in the
// share: it scans only /dev/drbd0 (never the backing /dev/vda, which carries
// the same PV label), creates its /dev nodes itself (no udev in the guest) and
// keeps no backup or archive (/etc is read-only there).
import * as fs from 'node:fs';
import { Lab } from './lab';
import { DRBD_DEVICE, RESOURCE, drbdadm } from './drbd';

const LVM_CONF = `devices {
  filter = [ "a|^${DRBD_DEVICE}$|", "r|.*|" ]
  global_filter = [ "a|^${DRBD_DEVICE}$|", "r|.*|" ]
  obtain_device_list_from_udev = 0
  use_devicesfile = 0
}
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { event_activation = 0 }
backup { backup = 0 archive = 0 }
`;

/** Prefix for a guest command line that runs lvm2 with the lab's configuration. */
export const LVM_ENV = 'LVM_SYSTEM_DIR=/run/lab/lvm';

/** Writes the lab's lvm.conf into both guests' shares. */
export function configureLvm(lab: Lab): void {
  for (const g of lab.nodes) {
    fs.mkdirSync(g.hostPath('lvm'), { recursive: true });
    fs.writeFileSync(g.hostPath('lvm/lvm.conf'), LVM_CONF);
  }
}

/** An lvm2 command line for a guest script, e.g. lvm('vgchange -ay vg0'). */
export const lvm = (args: string) => `${LVM_ENV} ${args}`;

/**
 * Writes the lab's lvm.conf and makes a VG (1 MiB extents) on nodea's /dev/drbd0 while both
 * nodes are connected, so DRBD gives nodeb the same VG; one LV per entry (size in MiB), left
 * inactive and nodea Secondary again.
 */
export async function createVg(lab: Lab, vg: string, lvMiB: Record<string, number>): Promise<void> {
  configureLvm(lab);
  await lab.a.ok([drbdadm(`primary ${RESOURCE}`), lvm(`pvcreate -q ${DRBD_DEVICE}`), lvm(`vgcreate -q -s 1m ${vg} ${DRBD_DEVICE}`),
    ...Object.entries(lvMiB).map(([lv, mib]) => lvm(`lvcreate -q -L ${mib}m -n ${lv} ${vg}`)), lvm(`vgchange -q -an ${vg}`), drbdadm(`secondary ${RESOURCE}`)].join(' && '));
}

/** The device node of an LV in a guest. */
export const lvPath = (vg: string, lv: string) => `/dev/${vg}/${lv}`;

/**
 * Activates the VG on a guest whose /dev/drbd0 is open for I/O (Primary), runs
 * the script, and deactivates it again whatever the script did, so the LVs do
 * not hold /dev/drbd0 open when the resource goes down.
 */
export function withVgActive(vg: string, script: string): string {
  // A subshell: its exits end only it, so a caller's script goes on (e.g. to demote).
  return `(\n${lvm(`vgchange -ay ${vg}`)} >/dev/null || exit 1\n{\n${script}\n}\nrc=$?\n${lvm(`vgchange -an ${vg}`)} >/dev/null || exit 1\nexit $rc\n)`;
}

/** sha256 of whole LVs as the guest reads them through device-mapper (VG active). */
export const lvHashScript = (vg: string, lvs: string[]) =>
  lvs.map((lv) => `dd if=${lvPath(vg, lv)} bs=1M iflag=direct status=none | sha256sum | cut -c1-64`).join('\n');

/** Parses lvHashScript's output into lv -> sha256. */
export function parseLvHashes(lvs: string[], out: string): Record<string, string> {
  const lines = out.trim().split('\n');
  if (lines.length !== lvs.length) throw new Error(`expected ${lvs.length} LV hashes, got:\n${out}`);
  return Object.fromEntries(lvs.map((lv, i) => [lv, lines[i]]));
}

// Real LVM2 on loop devices, for tests: every command gets a device filter that
// accepts only this lab's loop devices, activation is off (no device-mapper is
// needed: `--driverloaded n`, `lvcreate -an -Zn`) and no backup/archive files
// are written, so the machine's own LVM setup is never touched.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import { BlockDevice } from '../../lib/device/block-device';
import { BisyncError } from '../../lib/device/errors';
import { Loop, makeLoop, requires } from './env';

/** Marks the test pending unless root, losetup and lvm2 are there. */
export function requiresLvm(ctx: Mocha.Context): boolean {
  return requires(ctx, 'root', 'losetup', 'lvm');
}

/** A VG name no other test (or helper running at the same time) uses. */
export function uniqueVgName(prefix = 'bisync'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** The `--config` string that makes LVM see only `devices`. */
export function lvmConfig(devices: readonly string[]): string {
  const accept = devices.map((d) => `"a|^${d.replace(/[.+]/g, '\\$&')}$|"`).join(',');
  return [
    `devices { filter=[${accept},"r|.*|"] global_filter=[${accept},"r|.*|"] obtain_device_list_from_udev=0 use_devicesfile=0 }`,
    'activation { udev_sync=0 udev_rules=0 }',
    'backup { backup=0 archive=0 }',
    'global { use_lvmpolld=0 }',
  ].join(' ');
}

/** Runs one lvm command against `devices` only; returns stdout. Throws with stderr on failure. */
export function runLvm(devices: readonly string[], command: string, args: readonly string[]): string {
  try {
    return execFileSync('lvm', [command, '--config', lvmConfig(devices), '--driverloaded', 'n', ...args], {
      encoding: 'utf8',
      env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`lvm ${command} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** Rows of an LVM report (`pvs`, `vgs`, `lvs`) in JSON, with `fields` as keys. */
export function lvmReport(devices: readonly string[], command: 'pvs' | 'vgs' | 'lvs', fields: string, args: readonly string[] = []): Array<Record<string, string>> {
  const out = runLvm(devices, command, ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', fields, ...args]);
  const doc = JSON.parse(out) as { report: Array<Record<string, Array<Record<string, string>>>> };
  return doc.report.flatMap((r) => Object.values(r).flat());
}

/** One PV segment as `pvs --segments` reports it: PE range and owning LV ('' = free). */
export interface PvSegment {
  pv: string;
  start: number;
  size: number;
  lvName: string;
  lvUuid: string;
}

/**
 * Loop devices plus the lvm commands scoped to them. `pvcreate`/`vgcreate`/
 * `lvcreate` fill in the options activation-free tests need.
 */
export class LvmLab {
  readonly loops: Loop[];
  readonly vg: string;

  constructor(sizes: number[], opts: { sectorSize?: 512 | 4096; vg?: string } = {}) {
    this.loops = [];
    try {
      for (const size of sizes) this.loops.push(makeLoop(size, { sectorSize: opts.sectorSize }));
    } catch (e) {
      this.close();
      throw e;
    }
    this.vg = opts.vg ?? uniqueVgName();
  }

  get devices(): string[] {
    return this.loops.map((l) => l.device);
  }

  /** The first loop device (the PV most tests read). */
  get device(): string {
    return this.loops[0].device;
  }

  run(command: string, ...args: string[]): string {
    return runLvm(this.devices, command, args);
  }

  pvcreate(device: string, ...args: string[]): void {
    this.run('pvcreate', '-y', ...args, device);
  }

  /** pvcreate on every device not yet a PV is the caller's job; vgcreate takes the PVs named (default: all). */
  vgcreate(args: string[] = [], pvs: string[] = this.devices): void {
    this.run('vgcreate', '-y', ...args, this.vg, ...pvs);
  }

  /**
   * Creates an inactive, unzeroed LV; `size` is an lvcreate size ("8m") or extents ("4" with `-l`).
   * Arguments naming devices (/dev/...) restrict the allocation to those PVs.
   */
  lvcreate(name: string, size: string, ...args: string[]): void {
    const sizeArgs = /^\d+$/.test(size) ? ['-l', size] : ['-L', size];
    const pvs = args.filter((a) => a.startsWith('/dev/'));
    const opts = args.filter((a) => !a.startsWith('/dev/'));
    this.run('lvcreate', '-an', '-Zn', '-y', '-n', name, ...sizeArgs, ...opts, this.vg, ...pvs);
  }

  /** `lvs`-style per-LV rows of this VG. */
  lvs(fields: string, ...args: string[]): Array<Record<string, string>> {
    return lvmReport(this.devices, 'lvs', fields, [...args, this.vg]);
  }

  /** `vgs -o vg_seq_no,vg_uuid` of this VG. */
  vgInfo(): { seqno: number; uuid: string; extentSize: number } {
    const [row] = lvmReport(this.devices, 'vgs', 'vg_seqno,vg_uuid,vg_extent_size', [this.vg]);
    return { seqno: Number(row.vg_seqno), uuid: row.vg_uuid, extentSize: Number(row.vg_extent_size) };
  }

  /** PE allocation of one PV as LVM reports it, free segments included. */
  pvSegments(device: string = this.device): PvSegment[] {
    return lvmReport(this.devices, 'pvs', 'pv_name,pvseg_start,pvseg_size,lv_name,lv_uuid', ['--segments', '-a', device]).map((r) => ({
      pv: r.pv_name,
      start: Number(r.pvseg_start),
      size: Number(r.pvseg_size),
      lvName: r.lv_name.replace(/^\[(.*)\]$/, '$1'),
      lvUuid: r.lv_uuid,
    }));
  }

  /** pe_start in bytes of one PV. */
  peStart(device: string = this.device): number {
    const [row] = lvmReport(this.devices, 'pvs', 'pe_start', [device]);
    return Number(row.pe_start);
  }

  /** A `read` callback over one device, as lib/lvm's readLvm takes it, and its size. */
  async open(device: string = this.device): Promise<{ dev: BlockDevice; read: (offset: number, length: number) => Promise<Buffer>; size: number }> {
    const dev = await BlockDevice.open(device, { direct: false });
    return { dev, read: (offset, length) => dev.read(offset, length), size: dev.size };
  }

  /** Detaches the loops and deletes their files (the VG goes with them). */
  close(): void {
    for (const l of this.loops.splice(0)) l.detach();
  }
}

/** Expects a BisyncError ERR_BAD_LVM whose message matches `re`. */
export async function rejectsBadLvm(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BisyncError, `not a BisyncError: ${String(e)}`);
    assert.equal(e.code, 'ERR_BAD_LVM');
    assert.match(e.message, re);
    return true;
  });
}


// Two DRBD backing devices holding one LVM2 PV in their data area, split the
// way DRBD leaves them: a common VG made with the real lvm2 tools on one node
// and copied to the other, then each node's own lvm commands and LV writes,
// and DRBD meta-data (by drbdmeta) whose bitmap holds exactly the 4 KiB blocks
// each node changed since the split.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { Extent } from '../../lib/device/extent';
import { readLvmFromDevice } from '../../lib/lvm';
import { createMetadata, restoreMetadata, splitBrainStates } from '../../scripts/split-brain';
import { LvmLab, runLvm } from './lvm';
import { readRange } from './pair';

const BLOCK = 4096;
export type Side = 'local' | 'peer';

export class LvmPair {
  readonly lab: LvmLab;
  readonly dataSize: number;
  private before: Record<Side, Buffer> | null = null;

  constructor(size: number, opts: { vg?: string } = {}) {
    this.lab = new LvmLab([size, size], { vg: opts.vg });
    try {
      this.dataSize = createMetadata(this.local);
      if (createMetadata(this.peer) !== this.dataSize) throw new Error('the two loops differ in usable size');
    } catch (e) {
      this.lab.close();
      throw e;
    }
  }

  get local(): string {
    return this.lab.devices[0];
  }

  get peer(): string {
    return this.lab.devices[1];
  }

  get vg(): string {
    return this.lab.vg;
  }

  dev(side: Side): string {
    return side === 'local' ? this.local : this.peer;
  }

  /** One lvm command that sees only this node's device (both hold the same PV uuid). */
  lvm(side: Side, command: string, ...args: string[]): string {
    return runLvm([this.dev(side)], command, args);
  }

  /** The common history: a PV over the DRBD data area of the local device, a VG, LVs; then the same bytes on the peer. */
  create(pvArgs: string[], vgArgs: string[], lvs: Array<[name: string, size: string, ...args: string[]]>): void {
    fillCommon(this.local, this.dataSize);
    this.lvm('local', 'pvcreate', '-y', '--setphysicalvolumesize', `${this.dataSize}b`, ...pvArgs, this.local);
    this.lvm('local', 'vgcreate', '-y', ...vgArgs, this.vg, this.local);
    for (const [name, size, ...args] of lvs) this.lvm('local', 'lvcreate', '-an', '-Zn', '-y', '-n', name, /^\d+$/.test(size) ? '-l' : '-L', size, ...args, this.vg);
    // pvcreate wipes the signatures it finds, DRBD's meta-data among them: write it again.
    if (createMetadata(this.local) !== this.dataSize) throw new Error('usable size changed');
    const data = readRange(this.local, 0, this.dataSize);
    writeAt(this.peer, 0, data);
    this.before = { local: data, peer: data };
  }

  /** Byte ranges of an LV on a node's device, as that node's LVM metadata maps it. */
  async extentsOf(side: Side, lv: string): Promise<Extent[]> {
    const view = await readLvmFromDevice(this.dev(side), { history: false });
    const found = view?.vg.lvs.find((l) => l.name === lv);
    if (!found) throw new Error(`no LV ${lv} on the ${side} device`);
    return found.extents;
  }

  /** Writes `data` at `offset` inside an LV (through the node's own mapping), as a VM would. */
  async writeLv(side: Side, lv: string, offset: number, data: Buffer = randomBytes(BLOCK)): Promise<Buffer> {
    let pos = 0;
    let skip = offset;
    for (const [o, l] of await this.extentsOf(side, lv)) {
      if (skip >= l) {
        skip -= l;
        continue;
      }
      const n = Math.min(l - skip, data.length - pos);
      writeAt(this.dev(side), o + skip, data.subarray(pos, pos + n));
      pos += n;
      skip = 0;
      if (pos === data.length) return data;
    }
    throw new Error(`LV ${lv} on the ${side} device is shorter than ${offset + data.length} bytes`);
  }

  /** An LV's bytes on a device, read through the given node's mapping (default: the device's own). */
  async readLv(side: Side, lv: string, mapping: Side = side): Promise<Buffer> {
    return Buffer.concat((await this.extentsOf(mapping, lv)).map(([o, l]) => readRange(this.dev(side), o, l)));
  }

  /** Ends the split: each node's bitmap gets the blocks that differ from the common history, with split-brain UUIDs. */
  split(): Record<Side, Extent[]> {
    if (!this.before) throw new Error('create() first');
    const changed = { local: changedBlocks(this.before.local, readRange(this.local, 0, this.dataSize)), peer: changedBlocks(this.before.peer, readRange(this.peer, 0, this.dataSize)) };
    const s = splitBrainStates(changed.local, changed.peer);
    restoreMetadata(this.local, 'v08', 0, s.local, this.dataSize, changed.local);
    restoreMetadata(this.peer, 'v08', 1, s.peer, this.dataSize, changed.peer);
    return changed;
  }

  data(side: Side): Buffer {
    return readRange(this.dev(side), 0, this.dataSize);
  }

  close(): void {
    this.lab.close();
  }
}

function writeAt(device: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(device, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Pseudo-random bytes seeded by offset: the data both nodes shared before the split. */
function fillCommon(device: string, size: number): void {
  const chunk = Buffer.alloc(1 << 20);
  const fd = fs.openSync(device, 'r+');
  try {
    for (let off = 0; off < size; off += chunk.length) {
      for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE(((off + i) * 2654435761) >>> 0, i);
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function changedBlocks(a: Buffer, b: Buffer): Extent[] {
  const out: Extent[] = [];
  for (let off = 0; off < a.length; off += BLOCK) {
    const n = Math.min(BLOCK, a.length - off);
    if (a.compare(b, off, off + n, off, off + n) === 0) continue;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === off) out[out.length - 1] = [last[0], last[1] + n];
    else out.push([off, n]);
  }
  return out;
}

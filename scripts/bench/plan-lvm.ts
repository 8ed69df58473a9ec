// plan of two 1 TiB devices holding one LVM2 PV with a VG of 1000 LVs: the LVM
// layer (reading both views, comparing metadata, attributing every changed
// block to an LV) must not slow the plan. Each node changed 1 % of the device,
// in the LVs of its own VMs (this node the first 500 LVs, the peer the last
// 500), as in the deployment it is for. Sparse files in /dev/shm; no root.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Extent } from '../../lib/device/extent';
import { lvmId, pvImage, vgText } from '../lvm-image';
import { makePair, spreadRanges, splitBrainStates } from '../split-brain';
import { timed } from './merge';
import type { BenchRow } from './types';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const LVS = 1000;
const EXTENT = 128 * MiB;
const PE_START = 129 * MiB;
const LV_EXTENTS = 8;

/** The same PV (label, one metadata area, a VG text of 1000 linear LVs) at the start of both files. */
function writePv(files: string[], dataSize: number): void {
  const pvUuid = lvmId();
  const text = vgText({
    vgName: 'bench_vg', vgUuid: lvmId(), pvUuid, seqno: 1, extentSize: EXTENT, peStart: PE_START,
    peCount: Math.floor((dataSize - PE_START) / EXTENT), deviceSize: dataSize,
    lvs: Array.from({ length: LVS }, (_, i) => ({ name: `vm${i}`, segments: [[i * LV_EXTENTS, LV_EXTENTS]] as Array<[number, number]> })),
  });
  const img = pvImage({ deviceSize: dataSize, texts: [text], pvUuid, peStart: PE_START });
  for (const f of files) {
    const fd = fs.openSync(f, 'r+');
    try {
      for (const [off, data] of img.regions) fs.writeSync(fd, data, 0, data.length, off);
    } finally {
      fs.closeSync(fd);
    }
  }
}

export async function run(): Promise<BenchRow[]> {
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'bisync-bench-plan-lvm-'));
  try {
    const size = 2 ** 40;
    const files = [path.join(dir, 'local.img'), path.join(dir, 'peer.img')];
    for (const f of files) {
      fs.writeFileSync(f, '');
      fs.truncateSync(f, size);
    }
    const half = PE_START + (LVS / 2) * LV_EXTENTS * EXTENT;
    const runs = 40_000;
    const runBytes = 256 * 1024 + 12 * 4096; // 1 % of 1 TiB in 40 000 runs per node
    const local = spreadRanges(half - PE_START, runs, runBytes).map(([o, l]) => [o + PE_START, l] as Extent);
    const peer = spreadRanges(half - PE_START, runs, runBytes).map(([o, l]) => [o + half, l] as Extent);
    const dataSize = await makePair(files[0], files[1], { ...splitBrainStates(local, peer), bitsOnly: true });
    writePv(files, dataSize);
    // The same plan without the LVM layer, right before: what LVM adds, even on a loaded machine.
    const plain = timed(['plan', '--device', files[0], '--peer-device', files[1], '--json', '--no-lvm']);
    const r = timed(['plan', '--device', files[0], '--peer-device', files[1], '--json']);
    const doc = JSON.parse(r.stdout) as { verdict: string; lvm: { lvs: Array<{ verdict: string }> } | null };
    if (doc.verdict !== 'split-brain' || !doc.lvm || doc.lvm.lvs.length !== LVS) throw new Error(`plan did not see the split brain on the VG of ${LVS} LVs`);
    const changedLvs = doc.lvm.lvs.filter((l) => l.verdict !== 'unchanged').length;
    const what = `plan with LVM, two 1 TiB devices, 1 % changed each, VG of ${LVS} LVs (${changedLvs} changed)`;
    return [
      { area: 'plan', measure: `${what} (time)`, ours: `${r.seconds.toFixed(2)} s (--no-lvm: ${plain.seconds.toFixed(2)} s)`, limit: '-', target: '< 3 s', met: r.seconds < 3 },
      { area: 'plan', measure: `${what} (peak RSS)`, ours: r.rssMiB === null ? 'n/a' : `${r.rssMiB.toFixed(0)} MiB`, limit: '-', target: '< 500 MiB', met: r.rssMiB === null ? null : r.rssMiB < 500 },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// DRBD meta-data: `inspect --extents --json` on a 1 TiB device whose bitmap
// (32 MiB) has 1% of its bits set in scattered runs. Needs root, losetup and
// drbdmeta; the device is a sparse file in /dev/shm.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetadataAt } from '../../lib/drbd';
import { type BenchRow, median } from './types';

const TiB = 2 ** 40;
const CLI = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const RUNS = 3;

function canRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const cmd of ['losetup', 'drbdmeta']) if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) return `needs ${cmd}`;
  if (!fs.existsSync(CLI)) return `needs the compiled CLI (${CLI})`;
  return undefined;
}

/** Sets 1% of nBits in runs of 1 to 64 bits at random places; returns the bitmap and the bit count. */
function scatteredBitmap(bytes: number, nBits: number): { bm: Buffer; bits: number } {
  const bm = Buffer.alloc(bytes);
  let bits = 0;
  while (bits < nBits / 100) {
    const start = Math.floor(Math.random() * nBits);
    const len = 1 + Math.floor(Math.random() * 64);
    for (let b = start; b < Math.min(start + len, nBits); b++) {
      if (bm[b >>> 3] & (1 << (b & 7))) continue;
      bm[b >>> 3] |= 1 << (b & 7);
      bits++;
    }
  }
  return { bm, bits };
}

/** Wall time, CPU time (user + system: meaningful on a busy machine too) and peak RSS of one run. */
function timed(args: string[]): { seconds: number; cpu: number; rssMiB: number; status: number | null } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const m = /([\d.]+) ([\d.]+) ([\d.]+) (\d+)\s*$/.exec(r.stderr);
  return { seconds: Number(m?.[1] ?? NaN), cpu: Number(m?.[2] ?? NaN) + Number(m?.[3] ?? NaN), rssMiB: Number(m?.[4] ?? NaN) / 1024, status: r.status };
}

export async function run(): Promise<BenchRow[]> {
  const why = canRun();
  const measure = '`inspect --extents --json`, 1 TiB device, 1% of bits set in scattered runs';
  if (why) return [{ area: 'metadata', measure, ours: `skipped (${why})`, limit: '-', target: '< 2 s, < 300 MiB RSS', met: null }];
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'bisync-bench-md-'));
  const file = path.join(dir, 'backing.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, TiB + 3 * 512);
  const dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
  try {
    fs.mkdirSync('/run/lock', { recursive: true });
    execFileSync('drbdmeta', ['--force', '0', 'v08', dev, 'internal', 'create-md'], { stdio: 'ignore' });
    const dump = execFileSync('drbdmeta', ['--force', '0', 'v08', dev, 'internal', 'dump-md'], { encoding: 'utf8' });
    const mdOffset = Number(/# md_offset (\d+)/.exec(dump)![1]);
    const bmOffset = Number(/# bm_offset (\d+)/.exec(dump)![1]);
    const laSect = bmOffset / 512; // all of the usable space
    const nBits = Math.ceil(laSect / 8);
    const { bm, bits } = scatteredBitmap(Math.ceil(nBits / 8 / 4096) * 4096, nBits);
    const fd = fs.openSync(dev, 'r+');
    try {
      fs.writeSync(fd, bm, 0, bm.length, bmOffset);
      const sb = Buffer.alloc(4096);
      fs.readSync(fd, sb, 0, 4096, mdOffset);
      sb.writeBigUInt64BE(BigInt(laSect), 0);
      fs.writeSync(fd, sb, 0, 4096, mdOffset);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    // Check the answer once, then time it.
    const out = spawnSync(process.execPath, [CLI, 'inspect', dev, '--json'], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const doc = JSON.parse(out.stdout) as { bitsSet: number };
    if (doc.bitsSet !== bits) throw new Error(`inspect counted ${doc.bitsSet} bits, ${bits} were set`);
    const runs = Array.from({ length: RUNS }, () => timed(['inspect', dev, '--extents', '--json']));
    if (runs.some((r) => r.status !== 0)) throw new Error('inspect failed');
    const seconds = median(runs.map((r) => r.seconds));
    const cpu = median(runs.map((r) => r.cpu));
    const rss = Math.max(...runs.map((r) => r.rssMiB));
    // The native scan alone, in process: bitmap bytes per second, and what that means for 16 TiB.
    const h = await readMetadataAt(dev);
    let scanSeconds = Infinity;
    try {
      for (let i = 0; i < RUNS; i++) {
        const t = process.hrtime.bigint();
        let n = 0;
        for await (const e of h.md.bitmapExtents()) n += e[1] > 0 ? 1 : 0;
        scanSeconds = Math.min(scanSeconds, Number(process.hrtime.bigint() - t) / 1e9);
        if (n === 0) throw new Error('scan found nothing');
      }
    } finally {
      await h.close();
    }
    const bmMiB = bm.length / 2 ** 20;
    return [
      { area: 'metadata', measure: `bitmap scan to extents (library), ${bmMiB.toFixed(0)} MiB bitmap, 1% set`, ours: `${(bmMiB / scanSeconds).toFixed(0)} MiB/s (16 TiB: ~${((512 / bmMiB) * scanSeconds).toFixed(1)} s)`, limit: '-', target: '-', met: null },
      { area: 'metadata', measure: `${measure}: wall time (median of ${RUNS}, whole process)`, ours: `${seconds.toFixed(2)} s (CPU ${cpu.toFixed(2)} s, load ${os.loadavg()[0].toFixed(1)})`, limit: '-', target: '< 2 s', met: seconds < 2 },
      { area: 'metadata', measure: `${measure}: peak RSS`, ours: `${rss.toFixed(0)} MiB`, limit: '-', target: '< 300 MiB', met: rss < 300 },
    ];
  } finally {
    spawnSync('losetup', ['-d', dev]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

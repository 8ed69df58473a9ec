// The product's targets: a merge across two network namespaces against
// `drbd-bisync copy` of the same extents on one host, bytes on the wire
// against the bytes that must move, and `plan` of two 1 TiB devices.
// Needs root, losetup, ip and drbdmeta; devices live in /dev/shm.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockDevice } from '../../lib/device/block-device';
import { copyExtents } from '../../lib/device/compare';
import { Extent, totalBytes } from '../../lib/device/extent';
import { defaultStreams } from '../../lib/transport/bulk';
import { NetnsPair, createNetnsPair, netnsUnavailable } from '../netns';
import { startServe } from '../serve-process';
import { makePair, spreadRanges, splitBrainStates } from '../split-brain';
import { nb as benchNative, startNode } from './transport';
import { type BenchRow, median, systemBusySeconds } from './types';

const CLI = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const MiB = 2 ** 20;
const GiB = 2 ** 30;

const mbps = (bytes: number, s: number): string => `${(bytes / s / 1e6).toFixed(0)} MB/s`;
const pct = (x: number): string => `${(x * 100).toFixed(0)} %`;
/** CLI merges (and copies) of the across-namespaces row: the share varies run to run on shared cores. */
const RUNS = 7;

/** Runs the CLI to completion; wall time in seconds and peak RSS from /usr/bin/time when present. */
export function timed(args: string[], pre: string[] = [], nodeArgs: string[] = []): { seconds: number; stdout: string; stderr: string; rssMiB: number | null } {
  const time = fs.existsSync('/usr/bin/time') ? ['/usr/bin/time', '-f', '%M'] : [];
  const cmd = [...pre, ...time, process.execPath, ...nodeArgs, CLI, ...args];
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', maxBuffer: 256 * MiB });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${args[0]} failed (${r.status}): ${r.stderr}`);
  const rss = time.length ? Number(r.stderr.trim().split('\n').pop()) / 1024 : null;
  return { seconds, stdout: r.stdout, stderr: r.stderr, rssMiB: rss };
}

function loop(file: string, size: number): string {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  return execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
}

interface MergeDoc {
  outcome: string;
  movedToPeerBytes: number;
  movedToLocalBytes: number;
  wire: { wireBytesSent: number; wireBytesReceived: number };
}

/** Seconds since the merge process started when each phase first and last reported progress (see merge-phases.ts). */
type Phases = Record<string, { first: number; last: number }>;

interface MergeRun {
  seconds: number;
  doc: MergeDoc;
  phases: Phases;
}

function phasesOf(stderr: string): Phases {
  const line = stderr.split('\n').find((l) => l.startsWith('bisync-phases '));
  return line ? (JSON.parse(line.slice('bisync-phases '.length)) as Phases) : {};
}

/** Process start to transfer, transfer, flush + verify, finalize + exit, from a merge's phase times. */
function phaseSplit(p: Phases): string {
  const lanes = ['toPeer', 'toLocal'].map((k) => p[k]).filter((x) => x);
  if (!lanes.length || !p.exit) return 'n/a';
  const start = Math.min(...lanes.map((x) => x.first));
  const end = Math.max(...lanes.map((x) => x.last));
  const verified = p.verify?.last ?? end;
  const f = (x: number): string => `${x.toFixed(2)} s`;
  return `start + connect + plan ${f(start)} | transfer ${f(end - start)} | flush + verify ${f(verified - end)} | finalize + exit ${f(p.exit.last - verified)}`;
}

/**
 * Two loop devices of `size` and a namespace pair; `body` lays them out and
 * calls merge(), which runs `serve` in one namespace and `merge` in the other.
 */
async function acrossNamespaces<T>(dir: string, tag: string, subnet: string, size: number,
  body: (local: string, peer: string, merge: () => Promise<MergeRun>, net: NetnsPair) => Promise<T>): Promise<T> {
  const net = createNetnsPair(subnet);
  const devices: string[] = [];
  try {
    const [local, peer] = [loop(path.join(dir, `${tag}-local.img`), size), loop(path.join(dir, `${tag}-peer.img`), size)];
    devices.push(local, peer);
    const merge = async (): Promise<MergeRun> => {
      const psk = path.join(dir, `psk-${tag}`);
      fs.writeFileSync(psk, randomBytes(32).toString('hex'), { mode: 0o600 });
      const agent = await startServe(CLI, { device: peer, listen: `${net.b.address}:0`, pskFile: psk, once: true, netns: net.b.ns });
      const m = timed(['merge', '--device', local, '--peer', `${net.b.address}:${agent.port}`, '--psk-file', psk, '--yes', '--json', '--journal', path.join(dir, `journal-${tag}.json`)],
        ['ip', 'netns', 'exec', net.a.ns], ['-r', path.join(__dirname, '..', 'merge-phases.js')]);
      agent.proc.kill();
      const doc = JSON.parse(m.stdout) as MergeDoc;
      if (doc.outcome !== 'merged') throw new Error(`merge (${tag}) said ${doc.outcome}`);
      return { seconds: m.seconds, doc, phases: phasesOf(m.stderr) };
    };
    return await body(local, peer, merge, net);
  } finally {
    for (const d of devices) spawnSync('losetup', ['-d', d]);
    net.destroy();
  }
}

/**
 * What a merge cannot do without on this machine, in core-seconds per GiB moved, counted over
 * the whole machine (the loop devices' kernel workers and the veth pair's softirq work
 * included): every byte moved is read on one node and written on the other (copyExtents both
 * ways), read back there (a hashing read: the merge's memcmp costs more), sealed and opened
 * once (AES-256-GCM, the data streams' EVP calls) and sent once across the namespaces (native
 * sender and receiver, no protocol). Plus one start of the CLI (Node and the CLI's modules,
 * `--version`), which the merge's client pays before its first line runs (the agent is
 * already up), and which the copy it is measured against pays once per direction.
 */
interface Floor {
  disk: number;
  back: number;
  cipher: number;
  socket: number;
  /** Seconds from spawn to exit of `drbd-bisync --version` (Node, the CLI's modules), and of bare `node -e 0`. */
  cliStart: number;
  nodeStart: number;
  cores: number;
}
const floorPerGiB = (f: Floor): number => f.disk + f.back + f.cipher + f.socket;
/** The least wall time a merge moving `bytes` could take here: the CLI's start, then the floor's work on every core at once. */
const bestMerge = (f: Floor, bytes: number): number => f.cliStart + (floorPerGiB(f) * bytes) / GiB / f.cores;

async function busyOver(work: () => Promise<unknown>): Promise<number> {
  const b = systemBusySeconds();
  await work();
  return systemBusySeconds() - b;
}

/** Measures the floor on two devices laid out as a split brain (a on local, b on peer); leaves them copied. */
async function measureFloor(local: string, peer: string, a: Extent[], b: Extent[], net: NetnsPair): Promise<Floor> {
  const moved = totalBytes(a) + totalBytes(b);
  const g = moved / GiB;
  const [L, P] = await Promise.all([BlockDevice.open(local, { write: true }), BlockDevice.open(peer, { write: true })]);
  let disk: number;
  let back: number;
  try {
    disk = await busyOver(() => Promise.all([copyExtents(L, P, a), copyExtents(P, L, b)]).then(() => Promise.all([L.flush(), P.flush()])));
    const readBack = async (d: BlockDevice, x: Extent[]): Promise<void> => {
      for await (const _ of d.hashExtents(x, 4096)) void _;
    };
    back = await busyOver(() => Promise.all([readBack(P, a), readBack(L, b)]));
  } finally {
    await Promise.all([L.close(), P.close()]);
  }
  const c = benchNative.cipherCost(moved);
  const server = startNode(net.b.ns, ['native-tcp-server', '--host', net.b.address, '--bytes', String(moved / 2)]);
  let socket: number;
  try {
    const { port } = await server.next('listening');
    const client = startNode(net.a.ns, ['native-tcp-client', '--host', net.b.address, '--port', String(port), '--bytes', String(moved / 2)]);
    const [x, y] = await Promise.all([client.next('done'), server.next('done')]);
    socket = Math.max(x.busy as number, y.busy as number);
  } finally {
    server.proc.kill('SIGKILL');
  }
  const start = (args: string[]): number => median([0, 1, 2, 3, 4].map(() => timedRaw(['ip', 'netns', 'exec', net.a.ns, process.execPath, ...args])));
  return {
    disk: disk / g, back: back / g, cipher: (c.seal + c.open) / g, socket: socket / g,
    cliStart: start([CLI, '--version']), nodeStart: start(['-e', '0']), cores: os.availableParallelism(),
  };
}

function timedRaw(cmd: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status})`);
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/**
 * `runs` x MiB of scattered changes on each node of two devices of `size`: merge across
 * namespaces against `copy` of the same extents on one host, each direction once. The
 * floor measured on the same devices says what share of the copy any merge could reach here.
 */
function shareOfCopy(dir: string, o: { tag: string; subnet: string; size: number; runs: number; repeat: number }): Promise<{ rows: BenchRow[]; floor: Floor }> {
  return acrossNamespaces(dir, o.tag, o.subnet, o.size, async (local, peer, merge, net) => {
    // Runs of 1 MiB each side, interleaved so the sides never overlap.
    const a = spreadRanges(o.size / 2, o.runs, MiB);
    const b = spreadRanges(o.size / 2, o.runs, MiB).map(([x, l]) => [x + o.size / 2 - 8 * MiB, l] as Extent).filter(([x]) => x >= o.size / 2);
    const moving = totalBytes(a) + totalBytes(b);
    const files = [path.join(dir, `${o.tag}-a.json`), path.join(dir, `${o.tag}-b.json`)];
    fs.writeFileSync(files[0], JSON.stringify(a));
    fs.writeFileSync(files[1], JSON.stringify(b));

    // Each run: the baseline, the same extents with `copy` on one host (each direction once),
    // then the merge. Copy and merge alternate so a busy machine weighs on both alike.
    const runs: Array<MergeRun & { copy: number; share: number }> = [];
    for (let r = 0; r < o.repeat; r++) {
      await makePair(local, peer, splitBrainStates(a, b));
      const copy = timed(['copy', local, peer, '--extents', files[0], '--yes', '--json']).seconds + timed(['copy', peer, local, '--extents', files[1], '--yes', '--json']).seconds;
      const m = await merge();
      runs.push({ ...m, copy, share: copy / m.seconds });
    }
    await makePair(local, peer, splitBrainStates(a, b));
    const floor = await measureFloor(local, peer, a, b, net);
    const byShare = [...runs].sort((x, y) => x.share - y.share);
    const mid = byShare[Math.floor(o.repeat / 2)];
    const copies = runs.map((r) => r.copy).sort((x, y) => x - y);
    const moved = mid.doc.movedToPeerBytes + mid.doc.movedToLocalBytes;
    const wire = mid.doc.wire.wireBytesSent + mid.doc.wire.wireBytesReceived;
    const ratio = wire / moved;
    const best = bestMerge(floor, moving);
    const size = `2 x ${moving / 2 / MiB >= 1024 ? `${moving / 2 / GiB} GiB` : `${moving / 2 / MiB} MiB`}`;
    return {
      floor,
      rows: [
        {
          area: 'merge',
          measure: `merge ${size} scattered, ${o.size / GiB} GiB devices, across netns (CLI, ${defaultStreams(os.availableParallelism())} data streams), median of ${o.repeat} (share of copy: min-max)`,
          ours: `${mbps(moving, mid.seconds)} (${mid.seconds.toFixed(2)} s, ${pct(mid.share)} of copy; ${pct(byShare[0].share)}-${pct(byShare[o.repeat - 1].share)})`,
          limit: `copy same extents on one host: ${mbps(moving, mid.copy)} (${mid.copy.toFixed(2)} s; runs ${mbps(moving, copies[o.repeat - 1])}-${mbps(moving, copies[0])}); best merge here ${best.toFixed(2)} s (CLI start + floor) = ${pct(median(copies) / best)} of the median copy (${median(copies).toFixed(2)} s); the median merge took ${(mid.seconds / best).toFixed(2)} × the best`,
          target: '>= 70 % of copy',
          met: mid.share >= 0.7,
        },
        { area: 'merge', measure: `merge ${size}: phases, wall time of the median run (CLI, process start to exit)`, ours: phaseSplit(mid.phases), limit: `copy both ways, two processes: ${mid.copy.toFixed(2)} s`, target: '-', met: null },
        { area: 'merge', measure: `merge ${size}: bytes on the wire / bytes that must move`, ours: `${ratio.toFixed(4)} (${(wire / MiB).toFixed(1)} MiB for ${(moved / MiB).toFixed(1)} MiB)`, limit: '1.0000', target: '<= 1.01', met: ratio <= 1.01 },
      ],
    };
  });
}

/** The floor as a row: what each part of a merge's work costs this machine, and the least wall time it allows. */
function floorRow(f: Floor): BenchRow {
  const x = (v: number): string => v.toFixed(2);
  return {
    area: 'merge',
    measure: 'floor of a merge, core-s per GiB moved, whole machine: disk read + write | read back | AES-256-GCM seal + open | TCP across netns; CLI start (of which Node alone)',
    ours: '-',
    limit: `${x(f.disk)} | ${x(f.back)} | ${x(f.cipher)} | ${x(f.socket)} = ${x(floorPerGiB(f))} core-s per GiB on ${f.cores} cores; ${f.cliStart.toFixed(2)} s (${f.nodeStart.toFixed(2)} s)`,
    target: '-',
    met: null,
  };
}

/**
 * The whole merge as an operator sees it: two 64 GiB devices, 0.1 % of the
 * blocks changed on each node in scattered 4 KiB blocks, `merge` across the
 * namespaces from process start to exit (plan, transfer, verify, finalize),
 * against dd reading both whole devices at once: the least a tool that
 * hashes every block would spend.
 */
function endToEnd(dir: string): Promise<BenchRow[]> {
  const size = 64 * GiB;
  return acrossNamespaces(dir, 'e', '10.231.10', size, async (local, peer, merge) => {
    const blocks = Math.floor(size / 4096 / 1000); // 0.1 % of the blocks on each node
    const data = size - 256 * MiB; // clear of the internal meta-data at the end
    const a = spreadRanges(data, blocks, 4096);
    const taken = new Set(a.map(([o]) => o));
    const b = spreadRanges(data, blocks, 4096).filter(([o]) => !taken.has(o));
    await makePair(local, peer, splitBrainStates(a, b));
    const t = process.hrtime.bigint();
    await Promise.all([local, peer].map((d) => new Promise<void>((resolve, reject) => {
      const p = spawn('dd', [`if=${d}`, 'of=/dev/null', 'bs=4M', 'iflag=direct'], { stdio: 'ignore' });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`dd ${d} exited ${code}`))));
    })));
    const dd = Number(process.hrtime.bigint() - t) / 1e9;
    const { seconds, doc } = await merge();
    const m = { seconds };
    const moved = doc.movedToPeerBytes + doc.movedToLocalBytes;
    return [{
      area: 'merge',
      measure: `end to end: merge of two 64 GiB devices, 0.1 % of blocks changed on each node (scattered 4 KiB), across netns, process start to exit (${(moved / MiB).toFixed(0)} MiB moved)`,
      ours: `${m.seconds.toFixed(2)} s (ratio to dd: ${(m.seconds / dd).toFixed(3)})`,
      limit: `dd reading both whole devices at once: ${dd.toFixed(2)} s (${mbps(2 * size, dd)})`,
      target: 'ratio printed',
      met: null,
    }];
  });
}

/** plan of two 1 TiB sparse devices with 1 % of their blocks changed in scattered runs. */
async function planHuge(dir: string): Promise<BenchRow[]> {
  const size = 2 ** 40;
  const files = [path.join(dir, 'p-local.img'), path.join(dir, 'p-peer.img')];
  for (const f of files) {
    fs.writeFileSync(f, '');
    fs.truncateSync(f, size);
  }
  const runs = 40_000;
  const runBytes = 256 * 1024 + 12 * 4096; // about 1 % of 1 TiB in 40 000 runs
  await makePair(files[0], files[1], { ...splitBrainStates(spreadRanges(size, runs, runBytes), spreadRanges(size, runs, runBytes)), bitsOnly: true });
  const r = timed(['plan', '--device', files[0], '--peer-device', files[1], '--json']);
  const doc = JSON.parse(r.stdout) as { verdict: string };
  if (doc.verdict !== 'split-brain') throw new Error(`plan said ${doc.verdict}`);
  return [
    { area: 'plan', measure: 'plan, two 1 TiB devices, 1 % changed each (time)', ours: `${r.seconds.toFixed(2)} s`, limit: '-', target: '< 3 s', met: r.seconds < 3 },
    { area: 'plan', measure: 'plan, two 1 TiB devices, 1 % changed each (peak RSS)', ours: r.rssMiB === null ? 'n/a' : `${r.rssMiB.toFixed(0)} MiB`, limit: '-', target: '< 500 MiB', met: r.rssMiB === null ? null : r.rssMiB < 500 },
  ];
}

export async function run(): Promise<BenchRow[]> {
  const why = process.getuid?.() !== 0 ? 'needs root' : netnsUnavailable();
  if (why) return [{ area: 'merge', measure: 'merge and plan benchmarks', ours: `skipped: ${why}`, limit: '-', target: '-', met: null }];
  const dir = fs.mkdtempSync('/dev/shm/bisync-bench-merge-');
  try {
    // The issue's size, where the copy's two Node starts weigh, and one where the data does.
    const small = await shareOfCopy(dir, { tag: 'm', subnet: '10.231.9', size: 4 * GiB, runs: 256, repeat: RUNS });
    const large = await shareOfCopy(dir, { tag: 'l', subnet: '10.231.11', size: 8 * GiB, runs: 1024, repeat: 3 });
    return [...small.rows, ...large.rows, floorRow(large.floor), ...(await endToEnd(dir)), ...(await planHuge(dir))];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

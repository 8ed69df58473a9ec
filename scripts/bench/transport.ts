// Transport: a merge-sized exchange between two nodes in two network
// namespaces (agent in one, client in the other, TLS-PSK control connection
// and data streams over a veth pair) against copyExtents of the same extents
// on one host, bare Node TLS and bare TCP; the bytes on the wire against the
// payload; and where the CPU goes (the data streams' native timing). Needs root and ip; devices are loop devices over
// sparse files in /dev/shm. Run directly, this file is one node of the pair.
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as readline from 'node:readline';
import * as tls from 'node:tls';
import { parseArgs } from 'node:util';
import { BlockDevice } from '../../lib/device/block-device';
import { copyExtents } from '../../lib/device/compare';
import { Extent, normalize, subtract } from '../../lib/device/extent';
import { ResyncAgent, SessionEnd, TransferStats, connectPeer } from '../../lib/transport';
import { native } from '../../lib/native/binding';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { defaultStreams } from '../../lib/transport/bulk';
import { PSK_CIPHERS } from '../../lib/transport/psk';
import { transferExtents } from '../../lib/transport/transfer';
import { type BenchRow, median, systemBusySeconds } from './types';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const SIZE = 4 * GiB;
const CHANGED = 256 * MiB;
/** What the bare-socket baselines write per call. */
const CHUNK = 8 * MiB;
const SUBNET = '10.232.0';
const RUNS = 3;

/** The addon's benchmark helpers: the cipher and the socket alone, through the calls the data streams make. */
interface BenchNative {
  adopt(fd: number): number;
  close(fd: number): void;
  cipherCost(bytes: number): { seal: number; open: number };
  rawSend(sock: number, bytes: number): Promise<{ wire: number }>;
  rawRecv(sock: number, bytes: number): Promise<{ wire: number }>;
}
/** Also the merge bench's, for the cipher's part of its floor. */
export const nb = (native as unknown as { bulk: BenchNative }).bulk;

interface NetRun {
  seconds: number;
  stats: TransferStats;
  /** The agent's stats (its data streams' native CPU by part). */
  agentStats: TransferStats;
  /** CPU seconds (user + system) of client and agent during the run. */
  cpu: number;
}

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

const mbps = (bytes: number, s: number): string => `${(bytes / s / 1e6).toFixed(0)} MB/s`;

/** Scattered extents of 4 KiB to 1 MiB adding up to `total`, sorted, none overlapping `avoid`. */
function scattered(total: number, avoid: Extent[]): Extent[] {
  const out: Extent[] = [];
  let n = 0;
  while (n < total) {
    const len = Math.min(total - n, 4096 * (1 + Math.floor(Math.random() * 256)));
    const off = Math.floor(Math.random() * ((SIZE - len) / 4096)) * 4096;
    const fresh = [...subtract([[off, len]], normalize([...avoid, ...out]))];
    for (const e of fresh) {
      out.push(e);
      n += e[1];
    }
  }
  return normalize(out);
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A child process running this file as one node, and the JSON lines it prints. */
export function startNode(ns: string, args: string[]): { proc: ChildProcess; next: (event: string) => Promise<Record<string, unknown>> } {
  const pre = __filename.endsWith('.ts') ? ['-r', 'ts-node/register/transpile-only'] : [];
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, ...pre, __filename, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  let wake: (() => void) | null = null;
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>);
    wake?.();
  });
  proc.on('exit', () => wake?.());
  const next = async (event: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const i = lines.findIndex((l) => l.event === event || l.event === 'failed');
      if (i >= 0) {
        const [hit] = lines.splice(i, 1);
        if (hit.event === 'failed') throw new Error(`node failed: ${String(hit.message)}`);
        return hit;
      }
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`node exited (${proc.exitCode ?? proc.signalCode}) before '${event}'`);
      await new Promise<void>((r) => (wake = r));
    }
  };
  return { proc, next };
}

async function writeExtents(device: string, extents: Extent[]): Promise<void> {
  const dev = await BlockDevice.open(device, { write: true });
  try {
    for (const [off, len] of extents) await dev.write(randomBytes(len), off);
    await dev.flush();
  } finally {
    await dev.close();
  }
}

interface Setup {
  dir: string;
  loops: string[];
  ns: string[];
}

function cleanup(s: Setup): void {
  for (const l of s.loops) spawnSync('losetup', ['-d', l]);
  for (const n of s.ns) spawnSync('ip', ['netns', 'del', n]);
  fs.rmSync(s.dir, { recursive: true, force: true });
}

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (spawnSync('sh', ['-c', 'command -v ip && command -v losetup'], { stdio: 'ignore' }).status !== 0) return 'needs ip and losetup';
  return null;
}

export async function run(): Promise<BenchRow[]> {
  const why = unavailable();
  if (why) return [{ area: 'transport', measure: 'all', ours: `skipped: ${why}`, limit: '-', target: '-', met: null }];
  const tag = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const s: Setup = { dir: fs.mkdtempSync('/dev/shm/bisync-bench-transport-'), loops: [], ns: [`bisync-bench-${tag}-a`, `bisync-bench-${tag}-b`] };
  try {
    const [nsA, nsB] = s.ns;
    const [devA, devB] = [`bsb${tag}a`, `bsb${tag}b`];
    ip('netns', 'add', nsA);
    ip('netns', 'add', nsB);
    ip('link', 'add', devA, 'netns', nsA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB);
    for (const [ns, dev, addr] of [[nsA, devA, `${SUBNET}.1`], [nsB, devB, `${SUBNET}.2`]]) {
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
    }
    const loop = (name: string): string => {
      const file = path.join(s.dir, name);
      fs.writeFileSync(file, '');
      fs.truncateSync(file, SIZE);
      const dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
      s.loops.push(dev);
      return dev;
    };
    const [local, peer] = [loop('local.img'), loop('peer.img')];
    const localChanges = scattered(CHANGED, []);
    const peerChanges = scattered(CHANGED, localChanges);
    await writeExtents(local, localChanges);
    await writeExtents(peer, peerChanges);
    const extentsFile = path.join(s.dir, 'extents.json');
    fs.writeFileSync(extentsFile, JSON.stringify({ push: localChanges, pull: peerChanges }));

    // One host: copyExtents both ways at once, as `drbd-bisync copy` would. Its CPU is the
    // disk's part of the floor: every byte moved is read once and written once.
    const diskCpu: number[] = [];
    const copyOneHost = async (): Promise<number> => {
      const [a, b] = await Promise.all([BlockDevice.open(local, { write: true }), BlockDevice.open(peer, { write: true })]);
      try {
        const t = performance.now();
        const cpu0 = process.cpuUsage();
        await Promise.all([copyExtents(a, b, localChanges), copyExtents(b, a, peerChanges)]);
        await Promise.all([a.flush(), b.flush()]);
        diskCpu.push(cpuSeconds(cpu0));
        return (performance.now() - t) / 1000;
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    };

    const psk = randomBytes(32).toString('hex');
    const rows: BenchRow[] = [];
    {
      // The agent holds its device exclusively, so it runs only for its own runs.
      const overNetwork = async (compression: 'none' | 'zstd'): Promise<NetRun> => {
        const agent = startNode(nsA, ['agent', '--device', peer, '--host', `${SUBNET}.1`, '--psk', psk]);
        try {
          const { port } = await agent.next('listening');
          const client = startNode(nsB, ['client', '--device', local, '--host', `${SUBNET}.1`, '--port', String(port), '--psk', psk, '--extents', extentsFile, '--compression', compression]);
          const done = await client.next('done');
          const end = await agent.next('session-end');
          return { seconds: done.seconds as number, stats: done.stats as TransferStats, agentStats: end.stats as TransferStats, cpu: (done.cpu as number) + (end.cpu as number) };
        } finally {
          agent.proc.kill('SIGTERM');
          await new Promise((r) => (agent.proc.exitCode !== null || agent.proc.signalCode !== null ? r(null) : agent.proc.once('exit', r)));
        }
      };
      const rawCpu: number[] = [];
      const tcpCpu: number[] = [];
      // Bare TLS (what one Node TLS stream costs) and bare TCP (what the socket alone costs).
      const bare = async (kind: 'raw' | 'tcp' | 'native-tcp', cpu: number[]): Promise<number> => {
        const server = startNode(nsA, [`${kind}-server`, '--host', `${SUBNET}.1`, '--psk', psk, '--bytes', String(CHANGED)]);
        try {
          const { port } = await server.next('listening');
          const client = startNode(nsB, [`${kind}-client`, '--host', `${SUBNET}.1`, '--port', String(port), '--psk', psk, '--bytes', String(CHANGED)]);
          const done = await client.next('done');
          const end = await server.next('done');
          cpu.push((done.cpu as number) + (end.cpu as number));
          return done.seconds as number;
        } finally {
          server.proc.kill('SIGKILL');
        }
      };
      const rawTls = (): Promise<number> => bare('raw', rawCpu);
      const nativeTcpCpu: number[] = [];
      // Alternate the runs so a busy machine weighs on all of them alike.
      const raw: number[] = [];
      const oneHost: number[] = [];
      const net: Record<'none' | 'zstd', NetRun[]> = { none: [], zstd: [] };
      for (let r = 0; r < RUNS; r++) {
        oneHost.push(await copyOneHost());
        raw.push(await rawTls());
        await bare('tcp', tcpCpu);
        await bare('native-tcp', nativeTcpCpu);
        net.none.push(await overNetwork('none'));
        net.zstd.push(await overNetwork('zstd'));
      }
      const moved = 2 * CHANGED;
      const local1 = median(oneHost);
      const perGiB = (cpu: number): number => cpu / (moved / GiB);
      const streams = defaultStreams(os.availableParallelism());
      const floor = cpuFloor(perGiB(median(nativeTcpCpu)), perGiB(median(diskCpu)));
      for (const compression of ['none', 'zstd'] as const) {
        const runs = [...net[compression]].sort((x, y) => x.seconds - y.seconds);
        const mid = runs[Math.floor(runs.length / 2)];
        const wire = mid.stats.wireBytesSent + mid.stats.wireBytesReceived;
        const ratio = local1 / mid.seconds;
        const label = compression === 'none' ? '' : ' with zstd (random data)';
        rows.push({
          area: 'transport',
          measure: `merge 2 × 256 MiB scattered 4K–1M extents, 4 GiB loops, across netns, ${streams} data streams${label} (median of ${RUNS})`,
          ours: `${mbps(moved, mid.seconds)} (${(100 * ratio).toFixed(0)}% of one host, ${((100 * median(raw)) / mid.seconds).toFixed(0)}% of bare TLS)`,
          limit: `${mbps(moved, local1)} (copyExtents both ways, one host); bare Node TLS-PSK both ways: ${mbps(moved, median(raw))}`,
          target: compression === 'none' ? '≥ 70% of one host' : '-',
          met: compression === 'none' ? ratio >= 0.7 : null,
        });
        rows.push({
          area: 'transport',
          measure: `bytes on the wire / changed bytes moved (batches as a merge makes them)${label}`,
          ours: `${(wire / moved).toFixed(4)} (${wire} / ${moved})`,
          limit: '1.0000',
          target: '≤ 1.01',
          met: wire <= 1.01 * moved,
        });
        rows.push({
          area: 'transport',
          measure: `CPU time, client + agent, per GiB moved, both directions${label}`,
          ours: `${perGiB(mid.cpu).toFixed(2)} s`,
          limit: `${floor.total.toFixed(2)} s (floor: cipher + socket + disk, below); ${perGiB(median(rawCpu)).toFixed(2)} s (bare Node TLS); ${perGiB(median(tcpCpu)).toFixed(2)} s (bare TCP in Node, no crypto)`,
          target: compression === 'none' ? '≤ 0.8 s' : '-',
          met: compression === 'none' ? perGiB(mid.cpu) <= 0.8 : null,
        });
      }
      const mid = [...net.none].sort((x, y) => x.seconds - y.seconds)[Math.floor(net.none.length / 2)];
      rows.push(breakdown(mid, moved, perGiB(median(tcpCpu))), floor.row(perGiB(mid.cpu)));
    }
    return rows;
  } finally {
    cleanup(s);
  }
}

/**
 * The least CPU this machine spends per GiB moved between the two namespaces with this
 * cipher, whatever the protocol: (a) AES-256-GCM seal + open through the EVP calls the data
 * streams make, one thread, 8 MiB records in 256 KiB slices; (b) the socket alone, both ends
 * of a native sender and receiver in 1 MiB calls over the veth pair (the kernel's TCP work
 * and its copies to and from user space); (c) reading and writing the same extents on one
 * host. Every byte moved takes each of these once.
 */
function cpuFloor(socket: number, disk: number): { total: number; row: (ours: number) => BenchRow } {
  const c = nb.cipherCost(GiB);
  const cipher = c.seal + c.open;
  const total = cipher + socket + disk;
  return {
    total,
    row: (ours) => ({
      area: 'transport',
      measure: 'CPU floor per GiB moved, both nodes: AES-256-GCM seal + open (native, 1 thread) | TCP send + recv across netns (native, 1 MiB calls, both ends) | disk read + write (copyExtents)',
      ours: `${ours.toFixed(2)} s (ours, all parts)`,
      limit: `${c.seal.toFixed(2)} + ${c.open.toFixed(2)} s | ${socket.toFixed(2)} s | ${disk.toFixed(2)} s = ${total.toFixed(2)} s`,
      target: '≤ 0.8 s',
      met: ours <= 0.8,
    }),
  };
}

/**
 * Where the CPU of a merge goes, per GiB moved, both nodes together: the
 * native threads of the data streams time their own parts (disk read,
 * AES-256-GCM, socket send/recv, disk write); JS and the rest is what the
 * processes spent beyond that (event loop, control connection, hashing none).
 * The limit column: the cipher alone through node:crypto and bare TCP.
 */
function breakdown(run: NetRun, moved: number, tcpPerGiB: number): BenchRow {
  const parts = { read: 0, crypto: 0, socket: 0, write: 0, zstd: 0, verify: 0 };
  for (const st of [run.stats, run.agentStats]) {
    for (const k of Object.keys(parts) as Array<keyof typeof parts>) parts[k] += st.dataStreams?.cpu[k] ?? 0;
  }
  const g = moved / GiB;
  const native = Object.values(parts).reduce((a, b) => a + b, 0);
  const f = (x: number): string => `${(x / g).toFixed(2)} s`;
  const aes = (alg: 'aes-256-gcm' | 'aes-128-gcm'): number => {
    const slice = randomBytes(256 << 10);
    const key = randomBytes(alg === 'aes-256-gcm' ? 32 : 16);
    const cpu0 = process.cpuUsage();
    for (let n = 0; n < GiB; n += 8 * MiB) {
      const c = createCipheriv(alg, key, randomBytes(12));
      for (let o = 0; o < 8 * MiB; o += slice.length) c.update(slice);
      c.final();
    }
    return cpuSeconds(cpu0);
  };
  return {
    area: 'transport',
    measure: 'CPU per GiB moved, both nodes, by part: disk read | AES-256-GCM seal + open | socket send + recv | disk write | JS and the rest',
    ours: `${f(parts.read)} | ${f(parts.crypto)} | ${f(parts.socket)} | ${f(parts.write)} | ${f(Math.max(0, run.cpu - native))} (of ${f(run.cpu)})`,
    limit: `AES-GCM one pass over 1 GiB in node:crypto: 256-bit ${aes('aes-256-gcm').toFixed(2)} s, 128-bit ${aes('aes-128-gcm').toFixed(2)} s; bare TCP both ends ${tcpPerGiB.toFixed(2)} s`,
    target: '-',
    met: null,
  };
}

// ---- the two nodes, when run as a child process ----

const say = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');

async function agentNode(v: Record<string, string | undefined>): Promise<void> {
  const endpoint = await LocalEndpoint.open(v.device!, { write: true, plain: true });
  const agent = new ResyncAgent({ endpoint, psk: Buffer.from(v.psk!, 'hex'), listen: { host: v.host!, port: 0 } });
  agent.on('error', (e: Error) => process.stderr.write(`agent: ${e.message}\n`));
  let cpu0 = process.cpuUsage();
  agent.on('session', () => (cpu0 = process.cpuUsage()));
  agent.on('session-end', (e: SessionEnd) => say({ event: 'session-end', cpu: cpuSeconds(cpu0), stats: e.stats }));
  const stop = (): void => void agent.close().then(() => endpoint.close()).then(() => process.exit(0));
  process.once('SIGTERM', stop).once('SIGINT', stop);
  say({ event: 'listening', ...(await agent.listen()) });
}

async function clientNode(v: Record<string, string | undefined>): Promise<void> {
  const { push, pull } = JSON.parse(fs.readFileSync(v.extents!, 'utf8')) as { push: Extent[]; pull: Extent[] };
  const local = await LocalEndpoint.open(v.device!, { write: true, plain: true });
  const remote = await connectPeer({ host: v.host!, port: Number(v.port), psk: Buffer.from(v.psk!, 'hex'), compression: v.compression === 'zstd' ? 'zstd' : 'none' });
  const t = performance.now();
  const cpu0 = process.cpuUsage();
  // Both directions at once on one connection, as a merge moves them (its batch size and concurrency unless told).
  const o = { batchBytes: v.batch === undefined ? undefined : Number(v.batch), concurrency: v.concurrency === undefined ? undefined : Number(v.concurrency) };
  await Promise.all([transferExtents(local, remote, push, o), transferExtents(remote, local, pull, o)]);
  await Promise.all([local.flush(), remote.flush()]);
  const seconds = (performance.now() - t) / 1000;
  const stats = remote.stats();
  await remote.close();
  await local.close();
  say({ event: 'done', seconds, stats, cpu: cpuSeconds(cpu0) });
}

/**
 * Plain TLS-PSK between the two namespaces with no protocol on top: both
 * sides send `bytes` in 8 MiB writes at once and count what arrives. What
 * Node's TLS alone manages here bounds what any protocol over it can do.
 */
async function rawTlsNode(role: string, v: Record<string, string | undefined>): Promise<void> {
  const psk = Buffer.from(v.psk!, 'hex');
  const bytes = Number(v.bytes);
  const opts = { ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2' as const, maxVersion: 'TLSv1.2' as const };
  const exchange = (sock: net.Socket): void => exchangeBoth(sock, bytes);
  if (role === 'raw-server') {
    const server = tls.createServer({ ...opts, pskCallback: () => psk }, exchange);
    server.listen(0, v.host, () => say({ event: 'listening', port: (server.address() as AddressInfo).port }));
  } else {
    const sock = tls.connect({ ...opts, host: v.host, port: Number(v.port), pskCallback: () => ({ psk, identity: 'bench' }), checkServerIdentity: () => undefined });
    sock.once('secureConnect', () => exchange(sock));
  }
}

/** Both sides send `bytes` in 8 MiB writes at once and count what arrives; prints CPU and time. */
function exchangeBoth(sock: net.Socket, bytes: number): void {
  sock.on('error', () => undefined); // the other side may be gone first once both are done
  const t = performance.now();
  const cpu0 = process.cpuUsage();
  let got = 0;
  let sent = false;
  const finish = (): void => {
    if (got < bytes || !sent) return;
    say({ event: 'done', seconds: (performance.now() - t) / 1000, cpu: cpuSeconds(cpu0) });
    sock.end();
    setTimeout(() => process.exit(0), 100);
  };
  sock.on('data', (d: Buffer) => {
    got += d.length;
    finish();
  });
  void (async () => {
    const chunk = randomBytes(CHUNK);
    for (let n = 0; n < bytes; n += CHUNK) if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
    sent = true;
    finish();
  })();
}

/**
 * Plain TCP between the namespaces, both ways at once, sent and received by native threads
 * in 1 MiB calls: the kernel's cost of the socket with no JavaScript in the way.
 */
function nativeTcpNode(role: string, v: Record<string, string | undefined>): void {
  const bytes = Number(v.bytes);
  const exchange = (sock: net.Socket): void => {
    const fd = nb.adopt((sock as unknown as { _handle: { fd: number } })._handle.fd);
    sock.destroy();
    const t = performance.now();
    const cpu0 = process.cpuUsage();
    // The machine's busy time too: the kernel's work for the veth pair is not all charged to us.
    const busy0 = systemBusySeconds();
    void Promise.all([nb.rawSend(fd, bytes), nb.rawRecv(fd, bytes)]).then(() => {
      say({ event: 'done', seconds: (performance.now() - t) / 1000, cpu: cpuSeconds(cpu0), busy: systemBusySeconds() - busy0 });
      nb.close(fd);
      process.exit(0);
    }, (e: Error) => say({ event: 'failed', message: e.message }));
  };
  if (role === 'native-tcp-server') {
    const server = net.createServer({ pauseOnConnect: true }, exchange);
    server.listen(0, v.host, () => say({ event: 'listening', port: (server.address() as AddressInfo).port }));
  } else {
    const sock = net.connect({ host: v.host, port: Number(v.port) }, () => exchange(sock));
    sock.pause();
  }
}

/** Plain TCP between the namespaces, both ways at once: what the socket alone costs. */
function rawTcpNode(role: string, v: Record<string, string | undefined>): void {
  const bytes = Number(v.bytes);
  const exchange = (sock: net.Socket): void => exchangeBoth(sock, bytes);
  if (role === 'tcp-server') {
    const server = net.createServer(exchange);
    server.listen(0, v.host, () => say({ event: 'listening', port: (server.address() as AddressInfo).port }));
  } else {
    const sock = net.connect({ host: v.host, port: Number(v.port) }, () => exchange(sock));
  }
}

if (require.main === module) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { batch: { type: 'string' }, concurrency: { type: 'string' }, bytes: { type: 'string' }, device: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, psk: { type: 'string' }, extents: { type: 'string' }, compression: { type: 'string' } },
  });
  (positionals[0]?.startsWith('native-tcp-') ? Promise.resolve(nativeTcpNode(positionals[0], values)) : positionals[0]?.startsWith('tcp-') ? Promise.resolve(rawTcpNode(positionals[0], values)) : positionals[0]?.startsWith('raw-') ? rawTlsNode(positionals[0], values) : positionals[0] === 'agent' ? agentNode(values) : positionals[0] === 'client' ? clientNode(values) : run().then((rows) => console.table(rows))).catch((e: Error) => {
    say({ event: 'failed', message: e.message });
    process.exitCode = 1;
  });
}

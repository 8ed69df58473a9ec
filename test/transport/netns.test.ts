// Two nodes as two network namespaces: the agent runs in one as a child
// process, the client in the other; real loop devices on both sides.
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { BlockDevice } from '../../lib/device/block-device';
import { diffDevices } from '../../lib/device/compare';
import { Extent, normalize } from '../../lib/device/extent';
import { Loop, makeLoop, tmpDir } from '../helpers/env';
import { NetnsPair, createNetnsPair, netnsUnavailable } from '../helpers/netns';

const MiB = 1 << 20;
const SIZE = 256 * MiB;
const MAIN = path.join(__dirname, 'fixtures', 'node-main.ts');
const PSK = randomBytes(32).toString('hex');

interface Event {
  event: string;
  [k: string]: unknown;
}

/** A child "node" and the JSON lines it prints. */
class NodeProcess {
  readonly events: Event[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;
  readonly proc: ChildProcess;
  stderr = '';

  constructor(ns: string, args: string[]) {
    this.proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '-r', 'ts-node/register/transpile-only', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.join(__dirname, '..', '..') });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      try {
        this.events.push(JSON.parse(l) as Event);
      } catch {
        this.events.push({ event: 'text', text: l });
      }
      this.waiters.splice(0).forEach((w) => w());
    });
    this.proc.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((r) => this.proc.on('exit', (code) => {
      r(code);
      this.waiters.splice(0).forEach((w) => w());
    }));
  }

  async waitFor(pred: (e: Event) => boolean, ms = 60_000): Promise<Event> {
    const end = Date.now() + ms;
    for (;;) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`node exited without the awaited event; events: ${JSON.stringify(this.events)}; stderr: ${this.stderr}`);
      if (Date.now() > end) throw new Error(`timed out waiting; events: ${JSON.stringify(this.events)}; stderr: ${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}

function scatteredExtents(total: number, size: number): Extent[] {
  const out: Extent[] = [];
  let n = 0;
  while (n < total) {
    const len = Math.min(total - n, 4096 * (1 + Math.floor(Math.random() * 256)));
    const off = Math.floor(Math.random() * ((size - len) / 4096)) * 4096;
    out.push([off, len]);
    n += len;
  }
  return normalize(out);
}

describe('transport: two nodes in network namespaces', function () {
  let net: NetnsPair | null = null;
  let dir = '';
  const loops: Loop[] = [];
  const nodes: NodeProcess[] = [];
  let extents: Extent[] = [];
  let extentsFile = '';
  let source: Loop;

  let unavailable: string | null = null;

  before(async function () {
    unavailable = netnsUnavailable();
    if (unavailable) return;
    net = createNetnsPair();
    dir = tmpDir('bisync-netns-');
    source = makeLoop(SIZE, { dir });
    loops.push(source);
    extents = scatteredExtents(48 * MiB, SIZE);
    extentsFile = path.join(dir, 'extents.json');
    fs.writeFileSync(extentsFile, JSON.stringify(extents));
    const dev = await BlockDevice.open(source.device, { write: true });
    try {
      for (const [off, len] of extents) await dev.write(randomBytes(len), off);
      await dev.flush();
    } finally {
      await dev.close();
    }
  });

  beforeEach(function () {
    if (unavailable) {
      this.currentTest!.title += ` (pending: ${unavailable})`;
      this.skip();
    }
  });

  afterEach(async () => {
    for (const n of nodes.splice(0)) {
      n.kill('SIGKILL');
      await n.exited;
    }
  });

  after(() => {
    for (const l of loops) l.detach();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function newLoop(): Loop {
    const l = makeLoop(SIZE, { dir });
    loops.push(l);
    return l;
  }

  async function startAgent(device: string, extra: string[] = []): Promise<{ node: NodeProcess; port: number }> {
    const node = new NodeProcess(net!.a.ns, ['agent', '--device', device, '--host', net!.a.address, '--port', '0', '--psk', PSK, ...extra]);
    nodes.push(node);
    const l = await node.waitFor((e) => e.event === 'listening');
    return { node, port: l.port as number };
  }

  function startClient(device: string, port: number, extra: string[] = [], psk = PSK): NodeProcess {
    const node = new NodeProcess(net!.b.ns, ['client', '--device', device, '--host', net!.a.address, '--port', String(port), '--psk', psk, '--extents', extentsFile, ...extra]);
    nodes.push(node);
    return node;
  }

  async function identical(a: string, b: string): Promise<void> {
    const [da, db] = await Promise.all([BlockDevice.open(a), BlockDevice.open(b)]);
    try {
      const diffs: Extent[] = [];
      for await (const d of diffDevices(da, db, 4096)) diffs.push(d);
      assert.deepEqual(diffs, [], 'the devices differ after the transfer');
    } finally {
      await da.close();
      await db.close();
    }
  }

  it('pushes scattered extents to the peer device, with at most 1.01 x the payload on the wire', async () => {
    const target = newLoop();
    const { port } = await startAgent(target.device);
    const client = startClient(source.device, port, ['--batch', String(8 * MiB)]);
    const done = await client.waitFor((e) => e.event === 'done' || e.event === 'failed');
    assert.equal(done.event, 'done', JSON.stringify(done));
    const stats = done.stats as { wireBytesSent: number; payloadBytesSent: number };
    const total = extents.reduce((n, e) => n + e[1], 0);
    assert.equal(done.bytes, total);
    assert.ok(stats.payloadBytesSent >= total);
    assert.ok(stats.wireBytesSent <= 1.01 * stats.payloadBytesSent, `wire ${stats.wireBytesSent} vs payload ${stats.payloadBytesSent}`);
    await identical(source.device, target.device);
  });

  it('pulls from the peer with zstd and gets the same bytes', async () => {
    const target = newLoop();
    const { port } = await startAgent(source.device);
    const client = startClient(target.device, port, ['--direction', 'pull', '--compression', 'zstd']);
    const done = await client.waitFor((e) => e.event === 'done' || e.event === 'failed');
    assert.equal(done.event, 'done', JSON.stringify(done));
    await identical(source.device, target.device);
  });

  it('refuses a wrong key on both sides and keeps serving the right one', async () => {
    const target = newLoop();
    const { node: agent, port } = await startAgent(target.device);
    const bad = startClient(source.device, port, [], randomBytes(32).toString('hex'));
    const failed = await bad.waitFor((e) => e.event === 'done' || e.event === 'failed');
    assert.equal(failed.event, 'failed');
    assert.equal(failed.code, 'ERR_REFUSED');
    assert.match(String(failed.message), /authentication failed.*pre-shared key mismatch/);
    const logged = await agent.waitFor((e) => e.event === 'error');
    assert.match(String(logged.message), /authentication failed.*10\.231\.0\.2.*pre-shared key mismatch/);
    const good = startClient(source.device, port);
    assert.equal((await good.waitFor((e) => e.event === 'done' || e.event === 'failed')).event, 'done');
    await identical(source.device, target.device);
  });

  it('fails the transfer promptly when the agent is killed mid-transfer', async () => {
    const target = newLoop();
    const { node: agent, port } = await startAgent(target.device);
    const client = startClient(source.device, port, ['--rate', String(8 * MiB), '--batch', String(MiB)]);
    await client.waitFor((e) => e.event === 'progress');
    agent.kill('SIGKILL');
    const t = Date.now();
    const end = await client.waitFor((e) => e.event === 'done' || e.event === 'failed', 30_000);
    assert.equal(end.event, 'failed');
    assert.equal(end.code, 'ECONNRESET');
    assert.ok(Date.now() - t < 15_000);
  });

  it('lets a new coordinator finish after the first one died mid-transfer (the agent keeps its device)', async () => {
    const target = newLoop();
    const { node: agent, port } = await startAgent(target.device);
    const first = startClient(source.device, port, ['--rate', String(8 * MiB), '--batch', String(MiB)]);
    await first.waitFor((e) => e.event === 'progress');
    first.kill('SIGKILL');
    const ended = await agent.waitFor((e) => e.event === 'session-end');
    assert.equal(ended.code, 'ECONNRESET');
    const second = startClient(source.device, port);
    const done = await second.waitFor((e) => e.event === 'done' || e.event === 'failed');
    assert.equal(done.event, 'done', JSON.stringify(done));
    await identical(source.device, target.device);
  });

  it('fails the transfer by the idle timeout when the link goes down', async () => {
    const target = newLoop();
    const { port } = await startAgent(target.device);
    const client = startClient(source.device, port, ['--rate', String(8 * MiB), '--batch', String(MiB), '--idle-ms', '2000']);
    await client.waitFor((e) => e.event === 'progress');
    net!.setLink(false);
    try {
      const end = await client.waitFor((e) => e.event === 'done' || e.event === 'failed', 30_000);
      assert.equal(end.event, 'failed');
      assert.equal(end.code, 'ECONNRESET');
      assert.match(String(end.message), /nothing received/);
    } finally {
      net!.setLink(true);
    }
  });
});

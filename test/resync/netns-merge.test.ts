// Two nodes as two network namespaces joined by a veth pair, each with its
// own loop device whose DRBD meta-data drbdmeta wrote: `serve` runs in one,
// `merge` in the other, as operators run them. Crashes, cut links, wrong
// keys and busy devices end without loss, and a rerun finishes the merge.
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockDevice } from '../../lib/device/block-device';
import { Extent, subtract, union } from '../../lib/device/extent';
import { ServeProcess, startServe } from '../../scripts/serve-process';
import { randomRanges, splitBrainStates } from '../../scripts/split-brain';
import { requires } from '../helpers/env';
import { NetnsPair, createNetnsPair, requiresNetns } from '../helpers/netns';
import { Pair, drbdmetaView, overlay, readAll, readRange, setupPair } from '../helpers/pair';

const CLI = path.join(__dirname, '..', '..', 'dist', 'lib', 'cli', 'main.js');
const SIZE = 96 << 20;

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `drbd-bisync merge` inside a namespace; kill it after killAfterMs when given. */
function merge(ns: string, args: string[], killAfterMs?: number, onStderr?: (d: string) => void): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, 'merge', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d) => (stdout += d));
    proc.stderr!.on('data', (d) => {
      stderr += d;
      onStderr?.(String(d));
    });
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
    proc.on('exit', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

describe('merge across two network namespaces (serve + merge over TLS-PSK)', function () {
  let net: NetnsPair | undefined;
  let p: Pair | undefined;
  const procs: ChildProcess[] = [];

  before(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
    requiresNetns(this);
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does)`);
    net = createNetnsPair('10.231.7');
  });
  afterEach(async () => {
    for (const proc of procs.splice(0)) {
      proc.kill('SIGKILL');
      if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('exit', r));
    }
    p?.cleanup();
    p = undefined;
  });
  after(() => net?.destroy());

  function pskFile(): string {
    const f = path.join(p!.dir, `psk-${randomBytes(2).toString('hex')}`);
    fs.writeFileSync(f, randomBytes(32).toString('hex'), { mode: 0o600 });
    return f;
  }

  /** Split brain with disjoint, identical and (when asked) conflicting changes. */
  async function splitBrain(withConflicts: boolean): Promise<{ a: Extent[]; b: Extent[] }> {
    const shared = randomRanges(SIZE / 2, 8, 8);
    const a = randomRanges(SIZE - (2 << 20), 120, 64, shared);
    const bOnly = randomRanges(SIZE - (2 << 20), 120, 64, [...shared, ...a]);
    const b: Extent[] = withConflicts ? [...union(bOnly, a.slice(0, 3))] : bOnly;
    p = await setupPair(SIZE, { ...splitBrainStates(a, b), identicalWrites: shared, commonData: true }, { loop: true });
    return { a: [...union(a, shared)], b: [...union(b, shared)] };
  }

  function assertMerged(expected: Buffer): void {
    assert.ok(readRange(p!.local, 0, p!.dataSize).equals(expected), 'local data is the expected merge');
    assert.ok(readRange(p!.peer, 0, p!.dataSize).equals(expected), 'peer data is the expected merge');
    const [x, y] = [drbdmetaView(p!.local), drbdmetaView(p!.peer)];
    assert.equal(x.current, y.current);
    assert.deepEqual([x.bitmap, y.bitmap, x.bitsSet, y.bitsSet], ['0000000000000000', '0000000000000000', 0, 0]);
  }

  function mergeArgs(port: number, psk: string, extra: string[] = []): string[] {
    return ['--device', p!.local, '--peer', `${net!.b.address}:${port}`, '--psk-file', psk, '--yes', '--json', '--journal', path.join(p!.dir, 'journal.json'), ...extra];
  }

  /** A split brain whose peer device something else holds exclusively (as DRBD does until `down`) while body runs. */
  async function whileHeld(body: () => Promise<void>): Promise<void> {
    await splitBrain(false);
    const holder = await BlockDevice.open(p!.peer, { write: true });
    try {
      await body();
    } finally {
      await holder.close();
    }
  }

  async function startAgent(psk: string): Promise<ServeProcess> {
    const agent = await startServe(CLI, { device: p!.peer, listen: `${net!.b.address}:0`, pskFile: psk, netns: net!.b.ns });
    procs.push(agent.proc);
    return agent;
  }

  /**
   * A rate-limited merge that `cut` interrupts once its journal exists (the transfer has begun),
   * not after a fixed time: on a loaded machine the client may not even have connected by then.
   * It must fail as an error (exit 2).
   */
  async function interruptedMerge(port: number, psk: string, cut: () => void): Promise<Run> {
    const running = merge(net!.a.ns, mergeArgs(port, psk, ['--rate-limit', '10M']));
    const journal = path.join(p!.dir, 'journal.json');
    for (const t0 = Date.now(); !fs.existsSync(journal); ) {
      if (Date.now() - t0 > 60_000) throw new Error('the merge wrote no journal within 60 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    cut();
    const failed = await running;
    assert.equal(failed.status, 2, failed.stdout);
    return failed;
  }

  it('merges randomized disjoint changes and identical overlaps, then finalises both nodes', async () => {
    const { a, b } = await splitBrain(false);
    const psk = pskFile();
    const agent = await startAgent(psk);
    const r = await merge(net!.a.ns, mergeArgs(agent.port, psk, ['--compress', 'zstd']));
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.outcome, 'merged');
    assert.equal(doc.plan.conflictBytes, 0);
    assert.ok(doc.plan.identicalOverlapBytes > 0);
    assert.ok(doc.wire.wireBytesSent > 0 && doc.wire.wireBytesReceived > 0);
    assertMerged(overlay(p!.before.local, p!.before.peer, [...subtract(b, a)]));
  });

  it('a merge killed with SIGKILL at a random moment, run again, ends as an uninterrupted one', async () => {
    const { a, b } = await splitBrain(true);
    const psk = pskFile();
    const archive = path.join(p!.dir, 'archive');
    const args = (port: number) => mergeArgs(port, psk, ['--on-conflict', 'prefer-local', '--archive', archive, '--rate-limit', '10M']);
    let agent = await startAgent(psk);
    const killed = await merge(net!.a.ns, args(agent.port), 300 + Math.floor(Math.random() * 1500));
    assert.equal(killed.signal, 'SIGKILL', `merge finished before it was killed: ${killed.stdout}`);
    agent.proc.kill('SIGKILL');
    await agent.exited;
    agent = await startAgent(psk);
    const r = await merge(net!.a.ns, args(agent.port));
    assert.equal(r.status, 0, r.stderr);
    assertMerged(overlay(p!.before.local, p!.before.peer, [...subtract(b, a)]));
  });

  it('the peer\'s agent killed mid-transfer fails the merge cleanly; a rerun against a new agent finishes it', async () => {
    const { a, b } = await splitBrain(false);
    const psk = pskFile();
    const first = await startAgent(psk);
    const failed = await interruptedMerge(first.port, psk, () => first.proc.kill('SIGKILL'));
    assert.match(failed.stderr, /peer|connection|closed|reset/i);
    const agent = await startAgent(psk);
    const r = await merge(net!.a.ns, mergeArgs(agent.port, psk));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).resumed, true);
    assertMerged(overlay(p!.before.local, p!.before.peer, [...subtract(b, a)]));
  });

  it('a cut link fails the merge; once the link is back a rerun against the same agent finishes it', async () => {
    const { a, b } = await splitBrain(false);
    const psk = pskFile();
    const agent = await startAgent(psk);
    await interruptedMerge(agent.port, psk, () => net!.setLink(false));
    net!.setLink(true);
    const r = await merge(net!.a.ns, mergeArgs(agent.port, psk));
    assert.equal(r.status, 0, r.stderr);
    assertMerged(overlay(p!.before.local, p!.before.peer, [...subtract(b, a)]));
  });

  it('is refused with a wrong pre-shared key (exit 1) and changes nothing', async () => {
    await splitBrain(false);
    const agent = await startAgent(pskFile());
    const r = await merge(net!.a.ns, mergeArgs(agent.port, pskFile()));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /key|authenticat/i);
    assert.ok(readAll(p!.local).equals(p!.before.localFile) && readAll(p!.peer).equals(p!.before.peerFile));
  });

  it('started before the peer\'s device is released (serve --wait-down, merge --wait-peer), merges the moment it is', async () => {
    const { a, b } = await splitBrain(false);
    const psk = pskFile();
    const port = 7893; // fixed: the merge must know it before anything listens there
    const holder = await BlockDevice.open(p!.peer, { write: true }); // DRBD, until `drbdadm down`
    let released = false;
    try {
      let mergeErr = '';
      const running = merge(net!.a.ns, mergeArgs(port, psk, ['--wait-peer', '60']), undefined, (d) => (mergeErr += d));
      const serve = spawn('ip', ['netns', 'exec', net!.b.ns, process.execPath, CLI, 'serve', '--device', p!.peer, '--listen', `${net!.b.address}:${port}`, '--psk-file', psk, '--once', '--json', '--wait-down', '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(serve);
      const events: Array<{ event: string; reason?: string }> = [];
      const listening = new Promise<void>((resolve, reject) => {
        let buf = '';
        serve.stdout!.on('data', (d) => {
          buf += d;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            events.push(JSON.parse(buf.slice(0, i)));
            buf = buf.slice(i + 1);
            if (events[events.length - 1].event === 'listening') resolve();
          }
        });
        serve.once('exit', (code) => reject(new Error(`serve exited ${code} before listening`)));
      });
      listening.catch(() => undefined); // awaited below; an early exit fails the polling first
      // Both wait: serve while the device is held, the merge while nothing listens.
      for (const t0 = Date.now(); !events.some((e) => e.event === 'waiting') || !/waiting for the agent/.test(mergeErr); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() - t0 > 30_000 || serve.exitCode !== null) throw new Error(`serve and merge did not both wait: ${JSON.stringify(events)} ${mergeErr}`);
      }
      assert.match(events[0].reason ?? '', /in use/);
      assert.equal(events.length, 1, 'serve listens only once the device is released');
      await holder.close();
      released = true;
      await listening;
      const r = await running;
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).outcome, 'merged');
      assertMerged(overlay(p!.before.local, p!.before.peer, [...subtract(b, a)]));
    } finally {
      if (!released) await holder.close();
    }
  });

  it('serve --wait-down gives up after its time with the in-use error (exit 1)', async () => {
    await whileHeld(async () => {
      const t = Date.now();
      const r = spawnSync('ip', ['netns', 'exec', net!.b.ns, process.execPath, CLI, 'serve', '--device', p!.peer, '--listen', `${net!.b.address}:0`, '--psk-file', pskFile(), '--wait-down', '1'], { encoding: 'utf8' });
      assert.equal(r.status, 1, r.stderr);
      assert.ok(Date.now() - t >= 1000, 'waited its second');
      assert.match(r.stdout, /waiting up to 1 s for .* to be released/);
      assert.match(r.stderr, /in use/);
    });
  });

  it('serve --wait-down ends its wait on SIGTERM (exit 1, nothing served)', async () => {
    await whileHeld(async () => {
      const serve = spawn(process.execPath, [CLI, 'serve', '--device', p!.peer, '--listen', '127.0.0.1:0', '--psk-file', pskFile(), '--wait-down', '60', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(serve);
      let out = '';
      let err = '';
      serve.stdout!.on('data', (d) => (out += d));
      serve.stderr!.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((r) => serve.once('exit', (code) => r(code)));
      for (const t0 = Date.now(); !/"event":"waiting"/.test(out); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() - t0 > 30_000 || serve.exitCode !== null) throw new Error(`serve did not wait: ${out} ${err}`);
      }
      const t = Date.now();
      serve.kill('SIGTERM');
      assert.equal(await exited, 1, err);
      assert.ok(Date.now() - t < 5000, 'stopped at once');
      assert.match(out + err, /gave up waiting for .* to be released/);
      assert.doesNotMatch(out, /listening/);
    });
  });

  it('refuses a device that something else holds, saying what to do (exit 1)', async () => {
    await whileHeld(async () => {
      const r = spawnSync('ip', ['netns', 'exec', net!.b.ns, process.execPath, CLI, 'serve', '--device', p!.peer, '--listen', `${net!.b.address}:0`, '--psk-file', pskFile()], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /in use/);
      assert.match(r.stderr, /drbdadm down/);
    });
  });
});

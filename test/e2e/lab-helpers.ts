// What the e2e scenarios share: writing known blocks through DRBD in a guest,
// checking them on both nodes, and running the CLI on the host or in a guest.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Guest, Lab, labUnavailable, prepareLab } from '../../scripts/drbd-lab/lab';
import { DRBD_DEVICE, RESOURCE, ddHash, ddWrite, drbdadm, procDrbd } from '../../scripts/drbd-lab/drbd';
import { ConnectLog, kernelDecision, kernelLogSince, markKernelLog, parseConnectLog } from '../../scripts/drbd-lab/kernel-log';
import { GenerationUuids, classify, uuidsOf } from '../../lib/plan/classify';

export const ROOT = path.resolve(__dirname, '../..');
/** The built CLI (DRBD_BISYNC_CLI overrides it, e.g. to try another build). */
export const CLI = process.env.DRBD_BISYNC_CLI ?? path.join(ROOT, 'dist/lib/cli/main.js');
export const MiB = 1024 * 1024;

/** CI sets CI=true: there nothing may turn pending for want of the lab. */
export const inCi = !!process.env.CI && !/^(false|0)$/i.test(process.env.CI);

/**
 * Marks the suite pending when this machine cannot run the lab (no root, no
 * qemu, no build: a developer's machine). Under CI=true the same is a failure,
 * and the message says why it is not pending.
 */
export function skipWithoutLab(ctx: Mocha.Context): void {
  const why = labUnavailable() ?? (fs.existsSync(CLI) ? undefined : `needs the built CLI (${path.relative(process.cwd(), CLI)}; run npm run build)`);
  if (!why) return;
  if (inCi) throw new Error(`the DRBD lab cannot run here: ${why}. CI=true, so this fails instead of turning pending`);
  for (const t of ctx.test!.parent!.tests) t.title += ` (pending: ${why})`;
  ctx.skip();
}

let shared: Promise<Lab> | undefined;

/**
 * The two guests every e2e file uses: booted once per run (a boot is most of a
 * minute under emulation). Preparing the kernel or booting failing is a test
 * failure everywhere, not a reason to be pending.
 */
export function sharedLab(): Promise<Lab> {
  shared ??= (async () => {
    prepareLab();
    const lab = await Lab.create();
    await lab.boot();
    return lab;
  })();
  return shared;
}

// A root hook: runs once after every e2e file.
after(async () => {
  const lab = await shared?.catch(() => undefined);
  await lab?.close();
});

/** A write one node makes through /dev/drbd0: `length` bytes derived from `tag` at `offset`. */
export interface Write {
  node: Guest;
  tag: string;
  offset: number;
  length: number;
  /** Where the write goes (default /dev/drbd0; an LV's node for writes inside an LV, offset relative to it). */
  dev?: string;
}

export function contentOf(w: Pick<Write, 'tag' | 'length'>): Buffer {
  const out = Buffer.alloc(w.length);
  for (let i = 0; i * 32 < w.length; i++) crypto.createHash('sha256').update(`${w.tag}/${i}`).digest().copy(out, i * 32);
  return out;
}

export const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/**
 * Makes the writes on their nodes (direct I/O through DRBD), each node's in
 * order; `wrap` turns each node's script into the one it runs (e.g. with its VG active).
 */
export async function writeAll(writes: Write[], wrap: (script: string) => string = (s) => s): Promise<void> {
  const byNode = new Map<Guest, Write[]>();
  for (const w of writes) byNode.set(w.node, [...(byNode.get(w.node) ?? []), w]);
  await Promise.all([...byNode].map(([g, ws]) => {
    const lines = ws.map((w) => {
      fs.writeFileSync(g.hostPath(`w-${w.tag}.bin`), contentOf(w));
      return ddWrite(g.guestPath(`w-${w.tag}.bin`), w.offset, w.dev);
    });
    return g.ok(wrap(lines.join(' && ')));
  }));
}

/**
 * Runs a script that reads /dev/drbd0. DRBD 8.4 refuses to open a Secondary
 * (EMEDIUMTYPE), so a Secondary is promoted for the read and demoted after.
 */
export async function readingDrbd(g: Guest, script: string): Promise<string> {
  if ((await procDrbd(g)).ro?.startsWith('Primary')) return g.ok(script);
  return g.ok(`${drbdadm(`primary ${RESOURCE}`)} || exit 1\n{\n${script}\n}\nrc=$?\n${drbdadm(`secondary ${RESOURCE}`)} || exit 1\nexit $rc`);
}

/** sha256 of each range as the guest reads it through DRBD. */
export async function hashesOn(g: Guest, ranges: Array<{ offset: number; length: number }>): Promise<string[]> {
  if (!ranges.length) return [];
  const out = await readingDrbd(g, ranges.map((r) => ddHash(r.offset, r.length)).join('\n'));
  return out.trim().split('\n');
}

/**
 * Asserts every write is present on both nodes, read through /dev/drbd0 in each
 * guest, and (wholeDevice) that both read the same whole device. One promotion
 * per node, one node after the other: only one may be Primary.
 */
export async function expectWritesOnBoth(lab: Lab, writes: Write[], wholeDevice = false): Promise<void> {
  const whole: string[] = [];
  for (const g of lab.nodes) {
    const lines = writes.map((w) => ddHash(w.offset, w.length));
    if (wholeDevice) lines.push(`sha256sum < ${DRBD_DEVICE} | cut -c1-64`);
    const got = (await readingDrbd(g, lines.join('\n'))).trim().split('\n');
    writes.forEach((w, i) => assert.equal(got[i], sha256(contentOf(w)), `${w.node.name}'s write ${w.tag} at ${w.offset} as read on ${g.name}`));
    if (wholeDevice) whole.push(got[writes.length]);
  }
  if (wholeDevice) assert.equal(whole[1], whole[0], 'sha256 of /dev/drbd0 on nodeb vs nodea');
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  json?: any;
}

function withJson(r: CliResult): CliResult {
  try {
    r.json = JSON.parse(r.stdout);
  } catch {
    /* not JSON: the caller's expectation reports stdout */
  }
  return r;
}

/** drbd-bisync on the host. */
export function hostCli(args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 600_000 });
  return withJson({ status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr + (r.error ? String(r.error) : '') });
}

/** drbd-bisync inside a guest (the same build, over the guest's 9p root). */
export async function guestCli(g: Guest, args: string[]): Promise<CliResult> {
  const id = g.start(`node ${CLI} ${args.map((a) => `'${a}'`).join(' ')} 2>/run/lab/cli.stderr`);
  const r = await g.wait(id, 600_000);
  const stderrFile = g.hostPath('cli.stderr');
  return withJson({ status: r.rc, stdout: r.out, stderr: fs.existsSync(stderrFile) ? fs.readFileSync(stderrFile, 'utf8') : '' });
}

export function describeCli(r: CliResult): string {
  return `exit ${r.status}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

/** Attaches both nodes' disk images as loop devices on the host for the duration of fn. */
export async function withHostLoops<T>(lab: Lab, fn: (devA: string, devB: string) => Promise<T> | T): Promise<T> {
  const attach = (f: string) => {
    const r = spawnSync('losetup', ['--find', '--show', f], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`losetup ${f}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const devA = attach(lab.a.disk);
  let devB: string | undefined;
  try {
    devB = attach(lab.b.disk);
    return await fn(devA, devB);
  } finally {
    for (const d of [devA, devB]) if (d) spawnSync('losetup', ['-d', d]);
  }
}

export function fileSha256(f: string): string {
  return sha256(fs.readFileSync(f));
}

export function copyDisk(from: string, to: string): void {
  fs.copyFileSync(from, to);
}

/** One node's generation UUIDs as `drbd-bisync inspect` reads them from its backing device. */
export function inspectUuids(dev: string): GenerationUuids {
  const r = hostCli(['inspect', dev, '--json']);
  assert.equal(r.status, 0, describeCli(r));
  return uuidsOf(r.json);
}

const hex = (u: bigint) => u.toString(16).toUpperCase().padStart(16, '0');
/** Bit 0 only records the role; DRBD masks it off in the handshake log and in every comparison. */
const masked = (u: string | bigint) => hex(BigInt(typeof u === 'string' ? `0x${u}` : u) & ~1n);

/** Writes the same mark into both guests' kernel logs; returns it for connectLogs(). */
export async function markBoth(lab: Lab, tag: string): Promise<string> {
  const mark = `${tag}-${Date.now()}`;
  await Promise.all(lab.nodes.map((g) => markKernelLog(g, mark)));
  return mark;
}

/** Each node's DRBD kernel log since the mark, parsed. */
export function connectLogs(lab: Lab, mark: string): Promise<ConnectLog[]> {
  return Promise.all(lab.nodes.map(async (g) => parseConnectLog(await kernelLogSince(g, mark))));
}

/** Each node's log since the mark once both logged a handshake (a peer that was dropped may log it late). */
async function handshakesLogged(lab: Lab, mark: string, timeoutMs = 60_000): Promise<ConnectLog[]> {
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 500))) {
    const logs = await connectLogs(lab, mark);
    if (logs.every((l) => l.handshakes.length > 0) || Date.now() - t0 > timeoutMs) return logs;
  }
}

/**
 * Checks the first handshake each node logged since the mark against the
 * project's classifier on the UUIDs inspect read from the disks before `up`:
 * the kernel saw the same UUIDs (bit 0 masked) and decided the same (verdict,
 * rule number, full sync or not). nodea is "self" on its own log, nodeb on its.
 */
export async function expectKernelAgrees(lab: Lab, mark: string, uuids: [GenerationUuids, GenerationUuids]): Promise<ConnectLog[]> {
  const logs = await handshakesLogged(lab, mark);
  lab.nodes.forEach((g, i) => {
    const [own, other] = i === 0 ? uuids : [uuids[1], uuids[0]];
    const h = logs[i].handshakes[0];
    assert.ok(h, `${g.name}: no drbd_sync_handshake / uuid_compare() in the kernel log since the mark`);
    const logged = (u: GenerationUuids) => [u.current, u.bitmap, ...u.history].map(masked);
    assert.deepEqual(h.self?.uuids.map(masked), logged(own), `${g.name}: the kernel's own UUIDs vs inspect (${h.line})`);
    assert.deepEqual(h.peer?.uuids.map(masked), logged(other), `${g.name}: the kernel's peer UUIDs vs inspect of the peer`);
    const { verdict, rule, fullSync } = classify(own, other);
    assert.deepEqual({ verdict, rule, fullSync }, kernelDecision(h), `${g.name}: classify() vs the kernel's '${h.line.replace(/^.*uuid_compare/, 'uuid_compare')}'`);
  });
  return logs;
}

/**
 * Proves a reconnect resynced nothing, on both nodes: every handshake since
 * the mark decided "in sync" by rule 40 with no bit set on either side, no
 * resync began and no leftover bits were dropped, both nodes carry the merge's
 * finalized current UUID, and DRBD moved and wrote no byte since `up`
 * (ns/nr/dw 0, oos 0). Reads through a Primary leave these counters at 0.
 */
export async function expectNothingResynced(lab: Lab, mark: string, finalized: string): Promise<void> {
  const logs = await connectLogs(lab, mark);
  for (const [i, g] of lab.nodes.entries()) {
    const log = logs[i];
    assert.ok(log.handshakes.length > 0, `${g.name}: no handshake logged since the mark`);
    for (const h of log.handshakes) {
      assert.deepEqual([h.result, h.rule], ['0', '40'], `${g.name}: ${h.line}`);
      assert.deepEqual([h.self?.bits, h.peer?.bits], [0, 0], `${g.name}: bits set at connect (self, peer)`);
      assert.deepEqual([h.self?.uuids[0], h.peer?.uuids[0]], [masked(finalized), masked(finalized)], `${g.name}: current UUIDs at the handshake vs the merge's finalized.currentUuid`);
    }
    assert.deepEqual(log.resyncs, [], `${g.name}: a resync began after the merge`);
    assert.deepEqual(log.leftoverBits, [], `${g.name}: DRBD dropped leftover bitmap bits`);
    const s = await procDrbd(g);
    assert.deepEqual({ ns: s.ns, nr: s.nr, dw: s.dw, oos: s.oos }, { ns: 0, nr: 0, dw: 0, oos: 0 }, `${g.name}: /proc/drbd counters since up:\n${s.raw}`);
  }
}

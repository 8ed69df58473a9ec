// What the e2e scenarios share: writing known blocks through DRBD in a guest,
// checking them on both nodes, and running the CLI on the host or in a guest.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Guest, Lab } from '../../scripts/drbd-lab/lab';
import { DRBD_DEVICE, RESOURCE, ddHash, ddWrite, drbdadm, procDrbd } from '../../scripts/drbd-lab/drbd';

export const ROOT = path.resolve(__dirname, '../..');
/** The built CLI (DRBD_BISYNC_CLI overrides it, e.g. to try another build). */
export const CLI = process.env.DRBD_BISYNC_CLI ?? path.join(ROOT, 'dist/lib/cli/main.js');
export const MiB = 1024 * 1024;

/** A write one node makes through /dev/drbd0: `length` bytes derived from `tag` at `offset`. */
export interface Write {
  node: Guest;
  tag: string;
  offset: number;
  length: number;
}

export function contentOf(w: Pick<Write, 'tag' | 'length'>): Buffer {
  const out = Buffer.alloc(w.length);
  for (let i = 0; i * 32 < w.length; i++) crypto.createHash('sha256').update(`${w.tag}/${i}`).digest().copy(out, i * 32);
  return out;
}

export const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Makes the writes on their nodes (direct I/O through DRBD), each node's in order. */
export async function writeAll(writes: Write[]): Promise<void> {
  const byNode = new Map<Guest, Write[]>();
  for (const w of writes) byNode.set(w.node, [...(byNode.get(w.node) ?? []), w]);
  await Promise.all([...byNode].map(([g, ws]) => {
    const lines = ws.map((w) => {
      fs.writeFileSync(g.hostPath(`w-${w.tag}.bin`), contentOf(w));
      return ddWrite(g.guestPath(`w-${w.tag}.bin`), w.offset);
    });
    return g.ok(lines.join(' && '));
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

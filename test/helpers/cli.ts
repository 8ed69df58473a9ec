// Runs the drbd-bisync CLI in a child process, as an operator would: the
// built one (`npm test` compiles first), or from source when there is none.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const BUILT = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const ARGS = fs.existsSync(BUILT) ? [BUILT] : ['-r', 'ts-node/register/transpile-only', path.join(ROOT, 'lib', 'cli', 'main.ts')];

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [...ARGS, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    input: opts.input ?? '',
    env: { ...process.env, ...opts.env },
    maxBuffer: 64 << 20,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export function cliJson<T = Record<string, unknown>>(args: string[], opts: { env?: Record<string, string> } = {}): { status: number | null; doc: T; stderr: string } {
  const r = cli([...args, '--json'], opts);
  let doc: T;
  try {
    doc = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not one JSON document on stdout (exit ${r.status}, signal ${r.signal}):\n${r.stdout}\n--- stderr:\n${r.stderr}`);
  }
  return { status: r.status, doc, stderr: r.stderr };
}

/** Starts the CLI in the background (e.g. `serve`). */
export function cliSpawn(args: string[], opts: { env?: Record<string, string> } = {}): ChildProcess {
  return spawn(process.execPath, [...ARGS, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

// Shared CLI plumbing: sizes, JSON vs human output, progress on a TTY, exit codes.
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import { BisyncError, ErrorCode } from '../device/errors';

/** Exit codes (documented in the README). */
export const Exit = {
  OK: 0,
  /** diff: devices differ; merge/plan: conflicts or refused. */
  DIFFERENT: 1,
  REFUSED: 1,
  ERROR: 2,
} as const;

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4, P: 1024 ** 5 };

/** "4K", "1M", "512", "1G" -> bytes (binary units). */
export function parseSize(text: string, what = 'size'): number {
  const m = /^(\d+)\s*([KMGTP]?)(i?B)?$/i.exec(String(text).trim());
  if (!m) throw new RangeError(`${what} must be a number with an optional K/M/G/T suffix, got '${text}'`);
  const v = Number(m[1]) * UNITS[m[2].toUpperCase()];
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${what} must be a positive size, got '${text}'`);
  return v;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Writes exactly one JSON document to stdout. */
export function printJson(doc: unknown): void {
  process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
}

export function println(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export interface Progress {
  update(done: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

const barFormat = (label: string): string => `${label.padEnd(16)} [{bar}] {percentage}% | {doneText} of {totalText} | ETA {eta_formatted}`;
const barOptions = { stream: process.stderr, hideCursor: true, etaBuffer: 50, clearOnComplete: false };
const texts = (done: number, total: number) => ({ doneText: formatBytes(done), totalText: formatBytes(total) });
const silent: Progress = { update() {}, stop() {} };

/** A progress bar on stderr when it is a TTY (and not --json); otherwise silent. */
export function progress(label: string, total: number, enabled = true): Progress {
  if (!enabled || !process.stderr.isTTY || total <= 0) return silent;
  const bar = new SingleBar({ ...barOptions, format: barFormat(label) }, Presets.shades_classic);
  bar.start(total, 0, texts(0, total));
  return { update: (done) => bar.update(done, texts(done, total)), stop: () => bar.stop() };
}

/** Several bars at once on stderr (one per phase or direction), each with bytes and ETA. */
export function progressGroup(enabled = true): { bar(label: string, total: number): Progress; stop(): void } {
  if (!enabled || !process.stderr.isTTY) return { bar: () => silent, stop() {} };
  const multi = new MultiBar({ ...barOptions, format: '{label} [{bar}] {percentage}% | {doneText} of {totalText} | ETA {eta_formatted}' }, Presets.shades_classic);
  return {
    bar(label, total) {
      if (total <= 0) return silent;
      const b = multi.create(total, 0, { label: label.padEnd(16), ...texts(0, total) });
      return { update: (done) => b.update(done, { label: label.padEnd(16), ...texts(done, total) }), stop: () => b.stop() };
    },
    stop: () => multi.stop(),
  };
}

/** Prints an error for an operator: one line, a hint, a stack only with DEBUG. */
export function reportError(e: unknown, json: boolean): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: string }).code;
  if (json) {
    printJson({ error: { message: err.message, code: code ?? null } });
  }
  process.stderr.write(`drbd-bisync: ${err.message}\n`);
  const own = (err as { hint?: unknown }).hint;
  const hint = err instanceof BisyncError ? err.hint : typeof own === 'string' ? own : hintFor(code);
  if (hint) process.stderr.write(`hint: ${hint}\n`);
  if (process.env.DEBUG && err.stack) process.stderr.write(`${err.stack}\n`);
}

function hintFor(code: string | undefined): string | undefined {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      // Root is refused for other reasons (a lock, a policy): then this would mislead.
      return process.getuid?.() === 0 ? undefined : 'run as root';
    case 'EBUSY':
      return 'the device is in use (mounted, or attached to DRBD: run `drbdadm down RESOURCE` first)';
    case 'ENOENT':
      return 'check the path';
    default:
      return undefined;
  }
}

/** Failures that are a refusal (nothing was changed on purpose), not an error. */
const REFUSALS = new Set<string>([ErrorCode.REFUSED, ErrorCode.SIZE_MISMATCH]);

/**
 * Runs a command body and maps its result or failure to the process exit code.
 * With refusalsExit1 (plan, merge, serve), a refusal exits 1 rather than 2.
 */
export async function run(json: boolean, body: () => Promise<number>, refusalsExit1 = false): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (e) {
    reportError(e, json);
    const refused = refusalsExit1 && e instanceof BisyncError && (REFUSALS.has(e.code) || e.refusal === true);
    process.exitCode = refused ? Exit.REFUSED : Exit.ERROR;
  }
}

/** Writes need --yes when nobody can be asked (stdin not a TTY). */
export async function confirmWrite(yes: boolean | undefined, what: string): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new BisyncError('ERR_REFUSED', `refusing to write ${what} without --yes (standard input is not a terminal)`);
  }
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`Write ${what}? [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new BisyncError('ERR_REFUSED', 'not confirmed; nothing written');
}

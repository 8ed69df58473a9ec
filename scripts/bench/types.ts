// What the benchmarks share: one row of the table `npm run bench` prints, the median, and the
// machine's busy time.
import * as fs from 'node:fs';

/** /proc/stat counts in USER_HZ ticks, 100 per second on every Linux architecture we build for. */
const USER_HZ = 100;
export interface BenchRow {
  area: string;
  measure: string;
  ours: string;
  limit: string;
  target: string;
  met: boolean | null;
}

/** The middle value (the upper one of an even count); NaN for none. */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
}

/**
 * CPU seconds every core of the machine has been busy since boot (/proc/stat: all but idle and
 * iowait). A difference over an operation counts what per-process clocks miss: the kernel's
 * loop-device workers, softirq work on the veth pair. Only meaningful on an otherwise quiet machine.
 */
export function systemBusySeconds(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const all = f.reduce((a, b) => a + b, 0);
  return (all - f[3] - f[4]) / USER_HZ;
}

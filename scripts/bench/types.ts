// What the benchmarks share: one row of the table `npm run bench` prints, and the median.
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

// One row of the benchmark table printed by `npm run bench`.
export interface BenchRow {
  area: string;
  measure: string;
  ours: string;
  limit: string;
  target: string;
  met: boolean | null;
}

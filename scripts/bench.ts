// `npm run bench`: runs every module in scripts/bench/ that exports run(),
// one after another, and prints their rows as a table and then as Markdown
// (with date and machine) to paste into the README.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BenchRow } from './bench/types';

type BenchModule = { run?: () => Promise<BenchRow[]> };

const COLUMNS: Array<[keyof BenchRow, string]> = [
  ['area', 'area'],
  ['measure', 'measure'],
  ['ours', 'ours'],
  ['limit', 'physical limit'],
  ['target', 'target'],
  ['met', 'met'],
];

function cell(row: BenchRow, key: keyof BenchRow): string {
  const v = row[key];
  if (key === 'met') return v === null ? '-' : v ? 'yes' : 'NO';
  return String(v);
}

function textTable(rows: BenchRow[]): string {
  const widths = COLUMNS.map(([k, title]) => Math.max(title.length, ...rows.map((r) => cell(r, k).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(COLUMNS.map(([, t]) => t)), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(COLUMNS.map(([k]) => cell(r, k))))].join('\n');
}

function markdownTable(rows: BenchRow[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `| ${COLUMNS.map(([, t]) => t).join(' | ')} |`,
    `|${COLUMNS.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${COLUMNS.map(([k]) => esc(cell(r, k))).join(' | ')} |`),
  ].join('\n');
}

export function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}, Node ${process.version}`;
}

async function main(): Promise<void> {
  const dir = path.join(__dirname, 'bench');
  const only = process.argv.slice(2);
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.js') && f !== 'types.js')
    .filter((f) => !only.length || only.includes(path.basename(f, '.js')))
    .sort();
  const rows: BenchRow[] = [];
  for (const f of files) {
    const mod = require(path.join(dir, f)) as BenchModule;
    if (typeof mod.run !== 'function') continue;
    process.stderr.write(`bench: ${f} ...\n`);
    try {
      rows.push(...(await mod.run()));
    } catch (e) {
      rows.push({ area: path.basename(f, '.js'), measure: 'run', ours: `failed: ${(e as Error).message}`, limit: '-', target: '-', met: false });
    }
  }
  console.log(textTable(rows));
  console.log();
  console.log(`Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.`);
  console.log();
  console.log(markdownTable(rows));
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 2;
  });
}

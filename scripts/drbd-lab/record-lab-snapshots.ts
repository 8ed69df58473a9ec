// Walks the qemu lab's two DRBD 8.4 nodes through the states `status` must read
// (states.ts) and saves test/status/lab-snapshot.ts, run in the guest, of some
// of them as <outdir>/<state>-<node>.json. Needs root and qemu.
//   npx ts-node --transpile-only scripts/drbd-lab/record-lab-snapshots.ts [OUTDIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Guest } from './lab';
import { LabState, record } from './states';

const PROJECT = path.resolve(__dirname, '../..');

/** The guest sees the host's root read-only at the same paths, so the project runs there as it is. */
export const SNAPSHOT = `cd ${PROJECT} && node -r ts-node/register/transpile-only test/status/lab-snapshot.ts`;

export async function snapshot(g: Guest): Promise<string> {
  return g.ok(SNAPSHOT);
}

/** The states recorded, by the file name's state part; the others are skipped. */
const RECORDED: Partial<Record<LabState, string>> = {
  'wfconnection-inconsistent': 'wfconnection',
  'syncsource-primary': 'sync',
  'synctarget-secondary': 'sync',
  'connected-primary-uptodate': 'connected',
  'diskless-peer-primary': 'diskless',
  'connected-primary-peer-diskless': 'peer-diskless',
  'standalone-primary-oos': 'disconnected-primary',
  'standalone-split-brain': 'split-brain',
  'split-brain-peer': 'split-brain',
};

if (require.main === module) {
  const outdir = path.resolve(process.argv[2] ?? path.join(PROJECT, 'test/fixtures/status/lab'));
  record(outdir, async (state: LabState, g: Guest) => {
    const name = RECORDED[state];
    if (name === undefined) return;
    fs.writeFileSync(path.join(outdir, `${name}-${g.name}.json`), await snapshot(g));
    console.log(`saved ${name}-${g.name}`);
  });
}

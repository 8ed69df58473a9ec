// Walks the lab's two DRBD 8.4 nodes through the states a status parser meets
// (states.ts) and saves /proc/drbd of each as <outdir>/<state>.txt.
//   npx ts-node --transpile-only scripts/drbd-lab/record-proc-drbd.ts [OUTDIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseProcDrbd } from './drbd';
import type { Guest } from './lab';
import { LabState, record } from './states';

/** States recorded under another name or not at all (the Diskless ones next to a Primary). */
const FILE_NAME: Partial<Record<LabState, (text: string) => string | undefined>> = {
  'diskless-peer-primary': () => undefined,
  'connected-primary-peer-diskless': () => undefined,
  // Named after what the peer ended up in: StandAlone or WFConnection.
  'split-brain-peer': (text) => `${parseProcDrbd(text).cs.toLowerCase()}-split-brain-peer`,
};

const outdir = path.resolve(process.argv[2] ?? 'test/fixtures/status/proc-drbd');
record(outdir, async (state: LabState, g: Guest) => {
  const text = await g.ok('cat /proc/drbd');
  const name = FILE_NAME[state] ? FILE_NAME[state]!(text) : state;
  if (name === undefined) return;
  fs.writeFileSync(path.join(outdir, `${name}.txt`), text);
  console.log(`${name} (${g.name}):\n${text}`);
});

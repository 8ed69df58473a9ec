// Walks the qemu lab's two DRBD 8.4 nodes through the states `status` must
// read (WFConnection, Connected, SyncSource/SyncTarget with progress, Diskless,
// StandAlone after a split brain) and saves lab-snapshot.ts of each node as
// test/fixtures/status/lab/<state>-<node>.json. Needs root and qemu.
//   npx ts-node --transpile-only test/status/record-lab.ts [OUTDIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Guest, Lab, labUnavailable, prepareLab } from '../../scripts/drbd-lab/lab';
import { RESOURCE, configure, createMd, down, drbdadm, splitBrain, up, waitState, waitSynced } from '../../scripts/drbd-lab/drbd';

/** The guest sees the host's root read-only at the same paths, so the project runs there as it is. */
export const SNAPSHOT = `cd ${path.resolve(__dirname, '../..')} && node -r ts-node/register/transpile-only test/status/lab-snapshot.ts`;

export async function snapshot(g: Guest): Promise<string> {
  return g.ok(SNAPSHOT);
}

async function main(): Promise<void> {
  const outdir = path.resolve(process.argv[2] ?? path.join(__dirname, '../fixtures/status/lab'));
  const why = labUnavailable();
  if (why) throw new Error(`the lab cannot run here: ${why}`);
  prepareLab();
  fs.mkdirSync(outdir, { recursive: true });
  const lab = await Lab.create({ diskSize: 128 * 1024 * 1024 });
  const { a, b } = lab;
  const save = async (state: string, g: Guest) => {
    fs.writeFileSync(path.join(outdir, `${state}-${g.name}.json`), await snapshot(g));
    console.log(`saved ${state}-${g.name}`);
  };
  try {
    console.log(`booted in ${await lab.boot()} ms`);
    await configure(lab, '1M');
    await createMd(lab);
    await up(a);
    await waitState(a, (s) => s.cs === 'WFConnection', 'WFConnection');
    await save('wfconnection', a);
    await up(b);
    await waitState(a, (s) => s.cs === 'Connected', 'Connected');
    await a.ok(drbdadm(`-- --overwrite-data-of-peer primary ${RESOURCE}`));
    await waitState(a, (s) => s.cs === 'SyncSource' && /sync'ed:\s+[1-9]/.test(s.raw), 'SyncSource with progress');
    await save('sync', a);
    await save('sync', b);
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`disk-options --resync-rate=200M ${RESOURCE}`))));
    await waitSynced(lab);
    await save('connected', a);
    await b.ok(drbdadm(`detach ${RESOURCE}`));
    await waitState(b, (s) => s.ds?.startsWith('Diskless') ?? false, 'Diskless');
    await waitState(a, (s) => s.ds === 'UpToDate/Diskless', 'peer Diskless');
    await save('diskless', b);
    await save('peer-diskless', a);
    await b.ok(drbdadm(`attach ${RESOURCE}`));
    await waitSynced(lab);
    await splitBrain(lab);
    await Promise.all(lab.nodes.map((g) => g.ok(`dd if=/dev/urandom of=/dev/drbd0 bs=4096 count=4 seek=${g === a ? 10 : 5000} oflag=direct status=none`)));
    await save('disconnected-primary', a);
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`secondary ${RESOURCE}`))));
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`connect ${RESOURCE}`))));
    await waitState(a, (s) => s.cs === 'StandAlone', 'StandAlone after split brain', 60_000);
    await waitState(b, (s) => s.cs === 'StandAlone', 'StandAlone after split brain', 60_000);
    await save('split-brain', a);
    await save('split-brain', b);
    await Promise.all(lab.nodes.map((g) => down(g)));
  } finally {
    await lab.close();
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}

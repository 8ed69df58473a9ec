// Walks the lab's two DRBD 8.4 nodes through the states a status parser meets
// and saves /proc/drbd of each as <outdir>/<state>.txt.
//   npx ts-node --transpile-only scripts/drbd-lab/record-proc-drbd.ts [OUTDIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, labUnavailable, prepareLab } from './lab';
import { RESOURCE, configure, createMd, down, drbdadm, procDrbd, splitBrain, up, waitState, waitSynced } from './drbd';

async function main(): Promise<void> {
  const outdir = path.resolve(process.argv[2] ?? 'test/fixtures/status/proc-drbd');
  const why = labUnavailable();
  if (why) throw new Error(`the lab cannot run here: ${why}`);
  prepareLab();
  fs.mkdirSync(outdir, { recursive: true });
  const lab = await Lab.create({ diskSize: 128 * 1024 * 1024 });
  const { a, b } = lab;
  const save = async (state: string, g = a) => {
    const text = await g.ok('cat /proc/drbd');
    fs.writeFileSync(path.join(outdir, `${state}.txt`), text);
    console.log(`${state} (${g.name}):\n${text}`);
  };
  try {
    console.log(`booted in ${await lab.boot()} ms`);
    await save('unconfigured');
    // Slow resync so the progress lines can be caught.
    await configure(lab, '4M');
    await createMd(lab);
    await up(a);
    await waitState(a, (s) => s.cs === 'WFConnection', 'WFConnection');
    await save('wfconnection-inconsistent');
    await up(b);
    await waitState(a, (s) => s.cs === 'Connected', 'Connected');
    await save('connected-inconsistent');
    await a.ok(drbdadm(`-- --overwrite-data-of-peer primary ${RESOURCE}`));
    await waitState(a, (s) => s.cs === 'SyncSource' && /sync'ed:\s+[1-9]/.test(s.raw), 'SyncSource with progress');
    await save('syncsource-primary', a);
    await save('synctarget-secondary', b);
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`disk-options --resync-rate=200M ${RESOURCE}`))));
    await waitSynced(lab);
    await save('connected-primary-uptodate', a);
    await save('connected-secondary-uptodate', b);
    await a.ok(drbdadm(`secondary ${RESOURCE}`));
    await save('connected-secondary-secondary', a);
    await b.ok(drbdadm(`detach ${RESOURCE}`));
    await waitState(b, (s) => s.ds?.startsWith('Diskless') ?? false, 'Diskless');
    await save('diskless', b);
    await waitState(a, (s) => s.ds === 'UpToDate/Diskless', 'peer Diskless');
    await save('connected-peer-diskless', a);
    await b.ok(drbdadm(`attach ${RESOURCE}`));
    await waitSynced(lab);
    await down(b);
    await waitState(a, (s) => s.cs === 'WFConnection', 'WFConnection');
    await save('wfconnection-uptodate', a);
    await up(b);
    await waitSynced(lab);
    // Split brain: writes on both sides while disconnected, then reconnect.
    await splitBrain(lab);
    await save('standalone-primary-disconnected', a);
    await Promise.all(lab.nodes.map((g) => g.ok(`dd if=/dev/urandom of=/dev/drbd0 bs=4096 count=4 seek=${g === a ? 10 : 5000} oflag=direct status=none`)));
    await save('standalone-primary-oos', a);
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`secondary ${RESOURCE}`))));
    await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`connect ${RESOURCE}`))));
    await waitState(a, (s) => s.cs === 'StandAlone', 'StandAlone after split brain', 60_000);
    await waitState(b, (s) => s.cs === 'StandAlone' || s.cs === 'WFConnection', 'StandAlone/WFConnection', 60_000);
    await save('standalone-split-brain', a);
    await save(`${(await procDrbd(b)).cs.toLowerCase()}-split-brain-peer`, b);
    await Promise.all(lab.nodes.map((g) => down(g)));
    await save('unconfigured-after-down', a);
  } finally {
    await lab.close();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

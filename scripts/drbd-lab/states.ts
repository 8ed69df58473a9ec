// One walk of the lab's two DRBD 8.4 nodes through the states a status reader
// meets. The recorders (record-proc-drbd.ts, record-lab-snapshots.ts) call it
// with their own save callback, so both record the same states the same way.
import * as fs from 'node:fs';
import { Guest, Lab, labUnavailable, prepareLab } from './lab';
import { RESOURCE, configure, createMd, down, drbdadm, splitBrain, up, waitState, waitSynced } from './drbd';

/**
 * One node's view, named after its /proc/drbd: connection state, then roles or
 * disk states where the connection state alone does not say it.
 */
export type LabState =
  | 'unconfigured'
  | 'wfconnection-inconsistent'
  | 'connected-inconsistent'
  | 'syncsource-primary'
  | 'synctarget-secondary'
  | 'connected-primary-uptodate'
  | 'connected-secondary-uptodate'
  | 'diskless-peer-primary'
  | 'connected-primary-peer-diskless'
  | 'diskless'
  | 'connected-peer-diskless'
  | 'connected-secondary-secondary'
  | 'wfconnection-uptodate'
  | 'standalone-primary-disconnected'
  | 'standalone-primary-oos'
  | 'standalone-split-brain'
  | 'split-brain-peer'
  | 'unconfigured-after-down';

/** Called once per (state, node) while the node is in that state; the two sync states concurrently. */
export type VisitState = (state: LabState, node: Guest) => Promise<void>;

/**
 * Takes freshly booted guests from no resource through initial sync, Diskless
 * (with a Primary peer, then with both Secondary), a lost peer and a split brain,
 * and leaves r0 down on both.
 */
export async function walkStates(lab: Lab, visit: VisitState): Promise<void> {
  const { a, b } = lab;
  await visit('unconfigured', a);
  // Slow initial sync so the progress lines can be caught, even by slow visitors.
  await configure(lab, '1M');
  await createMd(lab);
  await up(a);
  await waitState(a, (s) => s.cs === 'WFConnection', 'WFConnection');
  await visit('wfconnection-inconsistent', a);
  await up(b);
  await waitState(a, (s) => s.cs === 'Connected', 'Connected');
  await visit('connected-inconsistent', a);

  await a.ok(drbdadm(`-- --overwrite-data-of-peer primary ${RESOURCE}`));
  await waitState(a, (s) => s.cs === 'SyncSource' && /sync'ed:\s+[1-9]/.test(s.raw), 'SyncSource with progress');
  // Both at once: a slow visitor on one node must not let the resync finish before the other.
  await Promise.all([visit('syncsource-primary', a), visit('synctarget-secondary', b)]);
  await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`disk-options --resync-rate=200M ${RESOURCE}`))));
  await waitSynced(lab);
  await visit('connected-primary-uptodate', a);
  await visit('connected-secondary-uptodate', b);

  // Diskless next to a Primary, then next to a Secondary.
  await b.ok(drbdadm(`detach ${RESOURCE}`));
  await waitState(b, (s) => s.ds?.startsWith('Diskless') ?? false, 'Diskless');
  await waitState(a, (s) => s.ds === 'UpToDate/Diskless', 'peer Diskless');
  await visit('diskless-peer-primary', b);
  await visit('connected-primary-peer-diskless', a);
  await a.ok(drbdadm(`secondary ${RESOURCE}`));
  await waitState(b, (s) => s.ro === 'Secondary/Secondary', 'peer Secondary');
  await visit('diskless', b);
  await visit('connected-peer-diskless', a);
  await b.ok(drbdadm(`attach ${RESOURCE}`));
  await waitSynced(lab);
  await visit('connected-secondary-secondary', a);

  await down(b);
  await waitState(a, (s) => s.cs === 'WFConnection', 'WFConnection');
  await visit('wfconnection-uptodate', a);
  await up(b);
  await waitSynced(lab);

  // Split brain: writes on both sides while disconnected, then reconnect.
  await splitBrain(lab);
  await visit('standalone-primary-disconnected', a);
  await Promise.all(lab.nodes.map((g) => g.ok(`dd if=/dev/urandom of=/dev/drbd0 bs=4096 count=4 seek=${g === a ? 10 : 5000} oflag=direct status=none`)));
  await visit('standalone-primary-oos', a);
  await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`secondary ${RESOURCE}`))));
  await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`connect ${RESOURCE}`))));
  await waitState(a, (s) => s.cs === 'StandAlone', 'StandAlone after split brain', 60_000);
  // The peer that did not detect it may be left waiting for a connection.
  await waitState(b, (s) => s.cs === 'StandAlone' || s.cs === 'WFConnection', 'StandAlone/WFConnection', 60_000);
  await visit('standalone-split-brain', a);
  await visit('split-brain-peer', b);

  await Promise.all(lab.nodes.map((g) => down(g)));
  await visit('unconfigured-after-down', a);
}

/**
 * The recorders' common frame: boots a lab, walks every state with `visit`,
 * closes the lab. `outdir` is made first; a process exit code says how it went.
 */
export function record(outdir: string, visit: VisitState): void {
  const run = async (): Promise<void> => {
    const why = labUnavailable();
    if (why) throw new Error(`the lab cannot run here: ${why}`);
    prepareLab();
    fs.mkdirSync(outdir, { recursive: true });
    const lab = await Lab.create({ diskSize: 128 * 1024 * 1024 });
    try {
      console.log(`booted in ${await lab.boot()} ms`);
      await walkStates(lab, visit);
    } finally {
      await lab.close();
    }
  };
  run().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}

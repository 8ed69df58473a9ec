// Run inside a lab guest: one JSON document with everything that says what
// DRBD is doing right now, read back to back: /proc/drbd, the raw netlink
// replies (GET_STATUS and the object dumps), `drbdsetup events2 --now
// --statistics`, `drbdsetup status`, and the kernel's drbd log lines.
//   node -r ts-node/register/transpile-only test/status/lab-snapshot.ts
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { DrbdCmd, drbdRequestPayload, resolveDrbdFamily } from '../../lib/status/drbd-genl';
import { withGenlSocket } from '../../lib/status/genl';
import { readKernelLog } from '../../lib/status/kernel-log';

const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return `ERROR: ${(e as Error).message}`;
  }
};

(async () => {
  const procDrbd = fs.readFileSync('/proc/drbd', 'utf8');
  const netlink = await withGenlSocket(async (s) => {
    const fam = await resolveDrbdFamily(s);
    const messages: Record<string, Array<{ cmd: number; payload: string }>> = {};
    for (const [k, cmd] of Object.entries({ GET_STATUS: DrbdCmd.GET_STATUS, GET_RESOURCES: DrbdCmd.GET_RESOURCES, GET_DEVICES: DrbdCmd.GET_DEVICES, GET_CONNECTIONS: DrbdCmd.GET_CONNECTIONS, GET_PEER_DEVICES: DrbdCmd.GET_PEER_DEVICES })) {
      const replies = await s.request(fam.id, cmd, fam.version, drbdRequestPayload(), { dump: true });
      messages[k] = replies.map((m) => ({ cmd: m.cmd, payload: m.payload.toString('hex') }));
    }
    return { family: { id: fam.id, name: fam.name, version: fam.version, hdrSize: fam.hdrSize, maxAttr: fam.maxAttr, ops: fam.ops, groups: fam.groups }, messages };
  });
  const events2 = sh('drbdsetup', ['events2', '--now', '--statistics']);
  const drbdsetupStatus = sh('drbdsetup', ['status', '--verbose', '--statistics']);
  const drbdsetupShow = sh('drbdsetup', ['show']);
  const kernelLog = (readKernelLog() ?? []).filter((l) => /drbd/.test(l));
  process.stdout.write(`${JSON.stringify({ procDrbd, netlink, events2, drbdsetupStatus, drbdsetupShow, kernelLog }, null, 1)}\n`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

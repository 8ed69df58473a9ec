// status, watch: what DRBD is doing, from the kernel (netlink) or its fallbacks.
import { Command, Option } from 'commander';
import { getStatus } from '../../status/status';
import { watch } from '../../status/watch';
import type { DrbdStatus, ResourceStatus, StatusSource } from '../../status/types';
import { Exit, formatBytes, printJson, println, run } from '../output';

type SourceOpt = StatusSource | 'auto';
const sourceOption = (): Option =>
  new Option('--source <source>', 'where to read the state').choices(['auto', 'netlink', 'proc', 'events2']).default('auto');

export function registerStatusCommands(program: Command): void {
  program
    .command('status')
    .description('show DRBD resources: roles, connection and disk states, out-of-sync amount, resync progress, split brain')
    .argument('[resource]', 'only this resource')
    .addOption(sourceOption())
    .option('--json', 'print one JSON document')
    .action((resource: string | undefined, o: { source: SourceOpt; json?: boolean }) =>
      run(!!o.json, async () => {
        const st = await getStatus({ resource, source: o.source });
        if (o.json) printJson(st);
        else printStatus(st);
        return Exit.OK;
      }),
    );

  program
    .command('watch')
    .description('follow DRBD state changes until interrupted (--json: one JSON object per line per change)')
    .argument('[resource]', 'only this resource')
    .addOption(sourceOption())
    .option('--interval <ms>', 'polling period when reading /proc/drbd', '1000')
    .option('--json', 'print one JSON object per line')
    .action((resource: string | undefined, o: { source: SourceOpt; interval: string; json?: boolean }) =>
      run(!!o.json, async () => {
        const intervalMs = Number(o.interval);
        if (!Number.isInteger(intervalMs) || intervalMs < 50) throw new RangeError(`--interval must be an integer of at least 50 (ms), got '${o.interval}'`);
        const ac = new AbortController();
        const stop = (): void => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          for await (const ev of watch({ resource, source: o.source, intervalMs, signal: ac.signal })) {
            if (o.json) process.stdout.write(`${JSON.stringify(ev)}\n`);
            else if (ev.type === 'remove') println(`${ev.time} ${ev.resource.name}: removed`);
            else println(`${ev.time} ${describeLine(ev.resource as ResourceStatus)}`);
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
        return Exit.OK;
      }),
    );
}

/** One line: name, roles, connection, disks, out of sync. */
export function describeLine(r: ResourceStatus): string {
  const minors = r.minors.length > 1 ? `minors ${r.minors.join(',')}` : `minor ${r.minor}`;
  const oos = r.outOfSyncBytes ? `, ${formatBytes(r.outOfSyncBytes)} out of sync` : '';
  const sync = r.syncProgress ? `, ${r.syncProgress.percent}% synced` : '';
  return `${r.name} (${minors}): ${r.role}/${r.peerRole} ${r.connection} ${r.disk}/${r.peerDisk}${oos}${sync}${r.splitBrain ? ', SPLIT BRAIN' : ''}`;
}

function printStatus(st: DrbdStatus): void {
  for (const line of statusLines(st)) println(line);
}

/** The human report: a line per resource, details indented, the source last. */
export function statusLines(st: DrbdStatus): string[] {
  const out: string[] = [];
  if (!st.resources.length) out.push('no DRBD resources are configured');
  for (const r of st.resources) {
    out.push(describeLine(r));
    for (const line of details(r)) out.push(`  ${line}`);
  }
  const via = st.source === 'netlink' ? `netlink (api ${st.api})` : st.source === 'proc' ? `/proc/drbd (${st.version ?? '?'})` : 'drbdsetup events2';
  out.push(`source: ${via}`);
  for (const why of st.fallbackReasons ?? []) out.push(`  (not used: ${why})`);
  return out;
}

function details(r: ResourceStatus): string[] {
  const out: string[] = [];
  if (r.syncProgress) {
    const sp = r.syncProgress;
    const eta = sp.etaSeconds !== undefined ? `, about ${Math.floor(sp.etaSeconds / 60)}m${String(sp.etaSeconds % 60).padStart(2, '0')}s left` : '';
    out.push(`${r.connection}: ${sp.percent}% done, ${formatBytes(sp.remainingBytes)} to go${eta}`);
  }
  if (r.uuids) out.push(`UUIDs: ${[r.uuids.current, r.uuids.bitmap, ...r.uuids.history].join(':')}`);
  if (r.peers.length > 1) for (const p of r.peers) out.push(`peer ${p.name ?? p.nodeId ?? '?'}: ${p.role} ${p.connection} ${p.volumes.map((v) => v.peerDisk).join(',')}`);
  const device = r.volumes.find((v) => v.backingDevice)?.backingDevice ?? 'BACKING_DEVICE';
  const planCmd = `drbdadm down ${r.name} on both nodes, then: drbd-bisync plan --device ${device} --peer PEER:PORT`;
  if (r.splitBrain) {
    out.push(`SPLIT BRAIN: DRBD detected a split brain and dropped the connection (${r.splitBrainEvidence === 'helper' ? 'split-brain handler event' : 'kernel log'}).`);
    out.push(`Both nodes may hold writes the other lacks. To merge them instead of discarding one side: ${planCmd}`);
  } else if (r.connection === 'StandAlone') {
    out.push(`StandAlone: not connected to the peer and not trying to connect.`);
    out.push(`If this follows a split brain ("Split-Brain detected" in the kernel log), see what a merge would do: ${planCmd}`);
  }
  return out;
}

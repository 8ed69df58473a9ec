// plan, merge, serve, restore-archive: the bidirectional resync commands.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { BisyncError, ErrorCode } from '../../device/errors';
import { DrbdResource, ResourceVolume, pickVolume, resolveResource } from '../../drbd/resource';
import { formatCommands, loadedDrbd, runDrbdadm, targetCommands } from '../../drbd/handback';
import { HandbackReport, RoleWatch, checkSurvivor, handBack, resourceState } from '../../resync/online';
import { checkOnlineWrites, dmOpenCounts } from '../../resync/online-gate';
import type { HandbackAccepted, HandbackRequest } from '../../transport/protocol';
import type { RemoteEndpoint } from '../../transport';
import { Plan, plan, planDocument } from '../../plan/plan';
import { LocalEndpoint, openWhenReleased } from '../../resync/local-endpoint';
import { Merge, MergeProgress, MergeReport } from '../../resync/merge';
import { PhaseClock } from '../../resync/phase-clock';
import { defaultJournalPath } from '../../resync/journal';
import { ArchivedMerge, archiveMerges, restoreArchive } from '../../resync/restore';
import { ResyncAgent, TransferStats, connectPeer, readPskFile } from '../../transport';
import type { Endpoint } from '../../transport/endpoint';
import { Exit, Progress, confirmWrite, formatBytes, parseSize, printJson, println, progressGroup, run } from '../output';
import { parseLvWinners, printLvm } from '../lvm-report';
import type { LvmResolutions } from '../../plan/lvm';

interface DeviceOptions {
  device?: string;
  metaDevice?: string;
  metaIndex?: string;
  resource?: string;
  drbdConfig?: string;
  volume?: string;
}

interface PeerOptions extends DeviceOptions {
  online?: boolean;
  peer?: string;
  peerDevice?: string;
  peerMetaDevice?: string;
  pskFile?: string;
  compress?: 'none' | 'zstd';
  rateLimit?: string;
  streams?: string;
  json?: boolean;
  lv?: string[];
  vgMetadata?: 'local' | 'peer';
  dropLv?: string[];
  lvm?: boolean;
  waitPeer?: string;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** LVM resolutions, on plan (to see their effect) and merge. */
function addLvmOptions(cmd: Command): Command {
  return cmd
    .option('--lv <name=local|peer>', "keep this node's or the peer's version of a whole LV (NAME: LV name, LV uuid or oVirt disk image id); repeatable", collect)
    .addOption(new Option('--vg-metadata <side>', "when both nodes changed the LVM metadata, keep this side's whole metadata region").choices(['local', 'peer']))
    .option('--drop-lv <name>', "give up an LV of the metadata loser that the winner's metadata has no room for (its blocks are archived); repeatable", collect)
    .option('--no-lvm', 'ignore LVM: plain block mode (an LV written on both nodes is then merged block by block); with --online: the device holds no LVM and nothing on this node uses the blocks the peer changed');
}

function lvmResolutions(o: PeerOptions): LvmResolutions {
  return { lvWinners: parseLvWinners(o.lv), vgMetadataWinner: o.vgMetadata, dropLvs: o.dropLv, lvm: o.lvm };
}

/** --device (with its meta-data options) or --resource: where this node's DRBD data and meta-data are. */
function addDeviceOptions(cmd: Command): Command {
  return cmd
    .option('--device <dev>', 'this node\'s DRBD backing device (resource down)')
    .option('--meta-device <dev>', 'external meta-data device (default: internal meta-data)')
    .option('--meta-index <n>', 'indexed external meta-data slot on --meta-device (default: flexible external)')
    .option('--resource <name>', 'take the backing and meta-data devices from the DRBD configuration of this resource (instead of --device)')
    .option('--drbd-config <file>', 'DRBD configuration file for --resource (default: drbdadm\'s, /etc/drbd.conf)')
    .option('--volume <n>', 'with --resource: the volume\'s position in the resource (needed when it has several)');
}

export interface LocalDevice {
  device: string;
  metaDevice?: string;
  metaIndex: number | 'flex';
  /** With --resource. */
  resource?: DrbdResource;
  volume?: ResourceVolume;
}

/** This node's device options, from --device or from the DRBD configuration of --resource. */
export async function localDevice(o: DeviceOptions): Promise<LocalDevice> {
  if (!!o.device === !!o.resource) throw new RangeError('give exactly one of --device DEV and --resource NAME');
  if (o.device) {
    if (o.drbdConfig || o.volume !== undefined) throw new RangeError('--drbd-config and --volume go with --resource, not --device');
    return { device: o.device, metaDevice: o.metaDevice, metaIndex: metaIndex(o.metaIndex) };
  }
  if (o.metaDevice || o.metaIndex !== undefined) throw new RangeError('--meta-device and --meta-index go with --device; --resource takes them from the DRBD configuration');
  if (o.volume !== undefined && !/^\d+$/.test(o.volume)) throw new RangeError(`--volume must be a whole number, got '${o.volume}'`);
  const resource = await resolveResource(o.resource!, { config: o.drbdConfig });
  const volume = pickVolume(resource, o.volume === undefined ? undefined : Number(o.volume));
  return {
    device: volume.backing,
    metaDevice: volume.metaIndex === 'internal' ? undefined : volume.metaDevice,
    metaIndex: volume.metaIndex === 'internal' ? 'flex' : volume.metaIndex,
    resource,
    volume,
  };
}

function addPeerOptions(cmd: Command): Command {
  return addDeviceOptions(cmd)
    .option('--peer <host:port>', 'the peer\'s `drbd-bisync serve` agent')
    .option('--psk-file <file>', 'pre-shared key file (with --peer)')
    .option('--peer-device <path>', 'the peer\'s backing device on this host (instead of --peer)')
    .option('--peer-meta-device <dev>', 'external meta-data device of --peer-device')
    .option('--online', 'this node is the surviving Primary and stays up (needs --resource and --peer): read its meta-data while DRBD holds it, write through its DRBD device')
    .addOption(new Option('--compress <alg>', 'compress blocks on the wire').choices(['none', 'zstd']).default('none'))
    .option('--rate-limit <bytes/s>', 'cap the transfer rate, e.g. 100M (each direction, all data streams together)')
    .option('--streams <n>', 'data streams to the peer for block data (default: one per core, 2 to 8; 0: none)')
    .option('--wait-peer <seconds>', 'while nothing listens at --peer yet (its `serve --wait-down` waits for the resource to go down), keep trying this long')
    .option('--json', 'print one JSON document');
}

function metaIndex(v: string | undefined): number | 'flex' {
  if (v === undefined) return 'flex';
  if (!/^\d+$/.test(v)) throw new RangeError(`--meta-index must be a whole number, got '${v}'`);
  return Number(v);
}

/** Opens this node's endpoint and the peer's (remote agent, or a second local device). */
interface Pair {
  local: LocalEndpoint;
  peer: Endpoint;
  label: string;
  wire?: () => TransferStats;
  /** With --resource. */
  resource?: DrbdResource;
  volume?: ResourceVolume;
  /** With --peer. */
  remote?: RemoteEndpoint;
}

/** --online takes the DRBD device and the resource to hand back from --resource, and needs the peer's agent to hand back. */
function checkOnline(o: PeerOptions, dev: LocalDevice): void {
  if (o.online && !dev.volume) throw new RangeError('--online needs --resource NAME: the DRBD device and the resource to hand back come from its configuration');
  if (o.online && !o.peer) throw new RangeError('--online needs --peer HOST:PORT: the other node\'s agent hands its resource back to DRBD');
}

/** `resolved`: this node's device when the caller already resolved it (drbdadm runs once per --resource). */
async function openPair(o: PeerOptions, write: boolean, resolved?: LocalDevice): Promise<Pair> {
  if (!!o.peer === !!o.peerDevice) throw new RangeError('give exactly one of --peer HOST:PORT and --peer-device PATH');
  const dev = resolved ?? await localDevice(o);
  checkOnline(o, dev);
  const live = o.online ? { drbdDevice: dev.volume!.device } : undefined;
  const local = await LocalEndpoint.open(dev.device, { write, metaDevice: dev.metaDevice, metaIndex: dev.metaIndex, live });
  try {
    if (o.peerDevice) {
      const peer = await LocalEndpoint.open(o.peerDevice, { write, metaDevice: o.peerMetaDevice, metaIndex: 'flex' });
      return { local, peer, label: o.peerDevice, resource: dev.resource, volume: dev.volume };
    }
    const { host, port } = parseHostPort(o.peer!, '--peer');
    if (!o.pskFile) throw new RangeError('--peer needs --psk-file FILE');
    const peer = await connectPeer({
      host,
      port,
      psk: readPskFile(o.pskFile),
      compression: o.compress ?? 'none',
      rateLimit: o.rateLimit ? parseSize(o.rateLimit, '--rate-limit') : undefined,
      streams: o.streams === undefined ? undefined : parseStreams(o.streams),
      waitForAgentMs: o.waitPeer === undefined ? undefined : parseSeconds(o.waitPeer, '--wait-peer'),
      onWaitForAgent: once(() => process.stderr.write(`drbd-bisync: waiting for the agent at ${o.peer} to listen (up to ${o.waitPeer} s)\n`)),
    });
    return { local, peer, label: o.peer!, wire: () => ({ ...peer.stats() }), resource: dev.resource, volume: dev.volume, remote: peer };
  } catch (e) {
    await local.close();
    throw e;
  }
}

function parseStreams(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 64) throw new RangeError(`--streams must be a whole number from 0 to 64, got '${v}'`);
  return Number(v);
}

export function parseHostPort(text: string, what: string, allowAnyPort = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  const lowest = allowAnyPort ? 0 : 1;
  if (!m || port < lowest || port > 65535) throw new RangeError(`${what} must be HOST:PORT (port ${lowest}-65535), got '${text}'`);
  return { host: m[1] ?? m[2], port };
}

/** One progress bar per phase or direction (both directions run at once), on stderr when it is a TTY. */
function progressReporter(enabled: boolean): { onProgress: (p: MergeProgress) => void; stop: () => void } {
  const group = progressGroup(enabled);
  const bars = new Map<string, Progress>();
  const labels: Record<string, string> = { plan: 'compare overlap', toPeer: 'to peer', toLocal: 'to this node', conflicts: 'conflicts', verify: 'verify' };
  return {
    onProgress(p) {
      if (p.phase === 'finalize') return;
      let bar = bars.get(p.phase);
      if (!bar) bars.set(p.phase, (bar = group.bar(labels[p.phase] ?? p.phase, p.totalBytes)));
      bar.update(p.doneBytes);
    },
    stop: () => group.stop(),
  };
}

function printPlan(p: Plan): void {
  println(`verdict: ${p.verdict} (DRBD 8.4 rule ${p.rule}, DRBD 9 rule ${p.drbd9Rule}): ${p.reason}`);
  println(`  local ${p.local.host}:${p.local.path} current ${p.local.currentUuid} bitmap ${p.local.bitmapUuid}, changed ${formatBytes(p.local.changedBytes)}${p.local.unclean ? ' (unclean: activity log included)' : ''}`);
  println(`  peer  ${p.peer.host}:${p.peer.path} current ${p.peer.currentUuid} bitmap ${p.peer.bitmapUuid}, changed ${formatBytes(p.peer.changedBytes)}${p.peer.unclean ? ' (unclean: activity log included)' : ''}`);
  println(`  to peer: ${formatBytes(p.toPeerBytes)}   to local: ${formatBytes(p.toLocalBytes)}   identical overlap: ${formatBytes(p.identicalOverlapBytes)}   conflicts: ${formatBytes(p.conflictBytes)}`);
  if (p.forcedToPeerBytes || p.forcedToLocalBytes) println(`  overwritten by LVM resolutions (archived first): on the peer ${formatBytes(p.forcedToPeerBytes)}, here ${formatBytes(p.forcedToLocalBytes)}`);
  for (const [off, len] of p.conflicts.slice(0, 20)) println(`  conflict at ${off} (${len} bytes)`);
  if (p.conflicts.length > 20) println(`  ... and ${p.conflicts.length - 20} more conflicting ranges`);
  printLvm(p.lvm ?? null, p.notes ?? [], p.blockers ?? []);
}

const exitForVerdict = (p: Plan): number =>
  p.verdict === 'history-split-brain' || p.verdict === 'unrelated' || p.conflicts.length || p.blockers.length ? Exit.REFUSED : Exit.OK;

const exitForOutcome: Record<MergeReport['outcome'], number> = {
  merged: Exit.OK, 'nothing-to-do': Exit.OK, 'left-to-drbd': Exit.OK, 'dry-run': Exit.OK, conflicts: Exit.REFUSED, refused: Exit.REFUSED,
};

export function registerResyncCommands(program: Command): void {
  addLvmOptions(addPeerOptions(program.command('plan').description('classify both nodes by their generation UUIDs and show what a merge would move (exit 0 ok, 1 conflicts or refused, 2 error)')))
    .action((o: PeerOptions) =>
      run(!!o.json, async () => {
        const pair = await openPair(o, false);
        const bar = progressReporter(!o.json);
        try {
          const p = await plan(pair.local, pair.peer, { ...lvmResolutions(o), openCounts: o.online ? dmOpenCounts : undefined, onProgress: (phase, d, t) => bar.onProgress({ phase: 'plan', doneBytes: d, totalBytes: t }) });
          bar.stop();
          if (o.json) printJson(planDocument(p));
          else printPlan(p);
          return exitForVerdict(p);
        } finally {
          bar.stop();
          await Promise.all([pair.local.close(), pair.peer.close()]);
        }
      }, true),
    );

  addLvmOptions(addPeerOptions(program.command('merge').description('merge both nodes\' changes after a split brain and finalise DRBD meta-data (exit 0 merged or nothing to do, 1 conflicts or refused, 2 error)'))
    .addOption(new Option('--on-conflict <policy>', 'resolve per-block conflicts outside LVs: keep this node\'s or the peer\'s blocks (never resolves an LV written on both nodes)').choices(['prefer-local', 'prefer-peer'])))
    .option('--archive <dir>', 'save every block a conflict policy or an LVM resolution overwrites here first (required with --on-conflict, --lv, --vg-metadata, --drop-lv)')
    .addOption(new Option('--verify <mode>', 'after the transfer compare both sides').choices(['changed', 'full', 'none']).default('changed'))
    .option('--journal <file>', 'merge journal (default /var/lib/drbd-bisync/<device>.journal.json)')
    .option('--dry-run', 'plan and report only; write nothing')
    .option('--csums-alg <alg>', 'online: the csums-alg both nodes connect with (default: the resource\'s, else md5)')
    .option('--handback-timeout <seconds>', 'online: how long to wait for Connected UpToDate/UpToDate', '3600')
    .option('--yes', 'write without asking')
    .action((o: MergeCliOptions) =>
      run(!!o.json, async () => {
        if (o.onConflict && !o.archive) throw new BisyncError(ErrorCode.REFUSED, `--on-conflict ${o.onConflict} needs --archive DIR`);
        const lvm = lvmResolutions(o);
        if (!o.online && o.csumsAlg) throw new RangeError('--csums-alg goes with --online');
        const timeoutMs = parseSeconds(o.handbackTimeout, '--handback-timeout');
        if (o.csumsAlg !== undefined && !/^[a-z0-9-]{1,32}$/.test(o.csumsAlg)) throw new RangeError(`--csums-alg must be a kernel hash name such as md5 or sha1, got '${o.csumsAlg}'`);
        const roles = new RoleWatch();
        let dev: LocalDevice | undefined;
        if (o.online) {
          // Before anything opens: a survivor that is not Primary or already connected has nothing to do online.
          dev = await localDevice(o);
          checkOnline(o, dev);
          checkSurvivor(roles.note(await resourceState(dev.resource!.name)));
        }
        if (!o.dryRun) await confirmWrite(o.yes, `merged blocks ${o.online ? 'into the live DRBD device' : 'and DRBD meta-data'} of ${o.device ?? `resource ${o.resource}`} and ${o.peer ?? o.peerDevice}`);
        const pair = await openPair(o, !o.dryRun, dev);
        if (o.online && o.waitPeer !== undefined) {
          // The wait for the agent may have been long: the survivor must still be what it was checked to be.
          await resourceState(dev!.resource!.name).then((st) => checkSurvivor(roles.note(st))).catch(async (e: unknown) => {
            await Promise.all([pair.local.close(), pair.peer.close()]);
            throw e;
          });
        }
        const bar = progressReporter(!o.json);
        let peerClosed = false;
        try {
          const m = new Merge(pair.local, pair.peer, {
            // By the real path: a merge resumed under another name for the device must find its journal.
            journal: o.journal ?? defaultJournalPath(realPath(pair.local.device.path)),
            onConflict: o.onConflict,
            archive: o.archive,
            verify: o.verify,
            dryRun: o.dryRun,
            peerLabel: pair.label,
            online: o.online,
            openCounts: o.online ? dmOpenCounts : undefined,
            beforeLocalWrites: o.online
              ? async (p, extents, afterCopy) => {
                // After the copy the gate only checks again: its notes came with the first run.
                const notes = await checkOnlineWrites(pair.local, pair.peer, p.lvm, extents, { noLvm: o.lvm === false, users: deviceUsers(pair.volume!.device), afterCopy });
                for (const n of notes) process.stderr.write(`drbd-bisync: ${n}\n`);
              }
              : undefined,
            ...lvm,
          });
          const clock = new PhaseClock();
          m.on('progress', bar.onProgress);
          m.on('progress', clock.note);
          m.on('log', (text: string) => process.stderr.write(`drbd-bisync: ${text}\n`));
          const report = await m.run();
          bar.stop();
          const wire = pair.wire?.() ?? null;
          let handback: HandbackReport | null = null;
          if (o.online && !o.dryRun && (report.outcome === 'merged' || report.outcome === 'left-to-drbd')) {
            const r = pair.resource!;
            const csums = o.csumsAlg ?? r.csumsAlg ?? 'md5';
            const say = (line: string): void => void (o.json ? undefined : process.stderr.write(`drbd-bisync: ${line}\n`));
            const sync = progressReporter(!o.json);
            handback = await handBack(r, pair.volume!.minor, async (alg) => {
              const accepted = await pair.remote!.handback({ csumsAlg: alg });
              peerClosed = true;
              await pair.peer.close(); // the agent hands back once this session ends
              await pair.local.close(); // nothing more to read here; DRBD takes over
              say(`the peer runs: ${accepted.commands.join('; ')}`);
              return accepted;
            }, roles, {
              csumsAlg: csums,
              timeoutMs,
              log: say,
              onProgress: (st) => {
                if (st.syncProgress) sync.onProgress({ phase: 'DRBD resync' as MergeProgress['phase'], doneBytes: (st.syncProgress.totalBytes ?? 0) - st.syncProgress.remainingBytes, totalBytes: st.syncProgress.totalBytes ?? st.syncProgress.remainingBytes });
              },
            });
            sync.stop();
          }
          if (o.json) printJson({ ...report, wire, phaseMs: clock.ms(), ...(o.online ? { handback } : {}) });
          else {
            println(report.message);
            if (report.outcome === 'conflicts' || report.outcome === 'dry-run' || report.outcome === 'refused') printPlan(planFromDoc(report));
            else if (report.lvm) printLvm(report.lvm, (report.plan.notes as string[] | undefined) ?? [], []);
            if (report.verification) println(`verified ${formatBytes(report.verification.checkedBytes)} (${report.verification.mode}): ${report.verification.ok ? 'identical' : 'DIFFERENT'}`);
            if (report.finalized) println(`meta-data finalised on both nodes: current UUID ${report.finalized.currentUuid}, bitmaps cleared; \`drbdadm up\` both nodes`);
            if (report.archive && (report.conflictResolution.archivedBytes || report.lvmResolution.archivedBytes)) println(`overwritten blocks archived in ${report.archive}`);
            if (wire) println(`on the wire: ${formatBytes(wire.wireBytesSent ?? 0)} sent, ${formatBytes(wire.wireBytesReceived ?? 0)} received`);
            if (handback) printHandback(handback, report.movedToLocalBytes);
          }
          return exitForOutcome[report.outcome];
        } finally {
          bar.stop();
          await Promise.all([pair.local.close(), peerClosed ? undefined : pair.peer.close()]);
        }
      }, true),
    );

  addDeviceOptions(program
    .command('serve')
    .description('serve this node\'s backing device to a `drbd-bisync merge` on the peer, over TLS with a pre-shared key'))
    .requiredOption('--listen <host:port>', 'address to listen on (port 0: any free port, printed)')
    .requiredOption('--psk-file <file>', 'pre-shared key file')
    .option('--once', 'exit after the first session ends')
    .option('--wait-down <seconds>', 'while the device is in use (the resource still up), wait this long for it to be released, then listen: start serve first, then `drbdadm down`')
    .option('--json', 'print one JSON line when listening and one per session')
    .action((o: DeviceOptions & { listen: string; pskFile: string; once?: boolean; json?: boolean; waitDown?: string }) =>
      run(!!o.json, async () => {
        const { host, port } = parseHostPort(o.listen, '--listen', true);
        const psk = readPskFile(o.pskFile);
        const waitMs = o.waitDown === undefined ? 0 : parseSeconds(o.waitDown, '--wait-down');
        const dev = await localDevice(o);
        const say = (doc: Record<string, unknown>, text: string): void => {
          if (o.json) process.stdout.write(`${JSON.stringify(doc)}\n`);
          else println(text);
        };
        // While it waits, SIGINT/SIGTERM end the wait (exit 1, nothing served).
        const waiting = new AbortController();
        const giveUp = (): void => waiting.abort(new BisyncError(ErrorCode.REFUSED, `gave up waiting for '${dev.device}' to be released`));
        if (waitMs) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, giveUp);
        let endpoint: LocalEndpoint;
        try {
          endpoint = await openWhenReleased(dev.device, { write: true, metaDevice: dev.metaDevice, metaIndex: dev.metaIndex }, waitMs,
            (why) => say({ event: 'waiting', device: dev.device, reason: why.message }, `waiting up to ${o.waitDown} s for ${dev.device} to be released: ${why.message}`), waiting.signal);
        } finally {
          for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, giveUp);
        }
        const started = Date.now();
        // With --resource this node can be the discarding side of an online merge: the hand-back runs after the session.
        let handback: string[][] | null = null;
        const onHandback = dev.resource ? (req: HandbackRequest): HandbackAccepted => {
          handback = targetCommands(dev.resource!, loadedDrbd().major, req.csumsAlg);
          return { resource: dev.resource!.name, servingMs: Date.now() - started, commands: formatCommands(handback) };
        } : undefined;
        const agent = new ResyncAgent({ endpoint, psk, listen: { host, port }, once: !!o.once, onHandback });
        const addr = await agent.listen();
        say({ event: 'listening', host: addr.host, port: addr.port, device: dev.device }, `serving ${dev.device} on ${addr.host}:${addr.port}`);
        agent.on('session', (info: unknown) => say({ event: 'session', info }, `session started: ${JSON.stringify(info)}`));
        agent.on('session-end', (info: unknown) => {
          say({ event: 'session-end', info }, `session ended: ${JSON.stringify(info)}`);
          if (handback) void agent.close(); // the device must be released before DRBD attaches it
        });
        agent.on('error', (e: Error) => process.stderr.write(`drbd-bisync serve: ${e.message}\n`));
        const stop = (): void => void agent.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        await new Promise<void>((resolve) => agent.once('close', resolve));
        await endpoint.close();
        if (handback) {
          await runDrbdadm(dev.resource!, handback, (line) => say({ event: 'handback', command: line }, `hand-back: ${line}`));
          say({ event: 'handed-back', resource: dev.resource!.name }, `resource ${dev.resource!.name} attached and connecting with --discard-my-data; DRBD resyncs it from the peer`);
        }
        return Exit.OK;
      }, true),
    );

  program
    .command('restore-archive')
    .description('write one merge\'s archived blocks back to a device (what it overwrites is archived first); use /dev/drbdN on a Primary so DRBD replicates it')
    .requiredOption('--archive <dir>', 'archive folder written by merge --archive')
    .option('--device <dev>', 'device to restore onto')
    .option('--list', 'list the merges the folder holds, and restore nothing')
    .option('--merge <id>', 'the merge to restore (default: the newest in the folder)')
    .addOption(new Option('--side <side>', 'only blocks archived from this side of the merge').choices(['local', 'peer']))
    .option('--dry-run', 'list what would be restored')
    .option('--yes', 'write without asking')
    .option('--json', 'print one JSON document')
    .action((o: { archive: string; device?: string; list?: boolean; merge?: string; side?: 'local' | 'peer'; dryRun?: boolean; yes?: boolean; json?: boolean }) =>
      run(!!o.json, async () => {
        if (o.list) {
          const merges = archiveMerges(o.archive);
          if (o.json) printJson({ merges });
          else printMerges(merges);
          return Exit.OK;
        }
        if (!o.device) throw new TypeError('restore-archive needs --device DEV (or --list)');
        if (!o.dryRun) await confirmWrite(o.yes, `archived blocks to ${o.device}`);
        const r = await restoreArchive(o.archive, o.device, { side: o.side, merge: o.merge, dryRun: o.dryRun });
        if (o.json) printJson(r);
        else println(`${o.dryRun ? 'would restore' : 'restored'} ${formatBytes(r.restoredBytes)} in ${r.entries} range(s) of merge ${r.merge ?? '(no identity: one merge)'} from ${r.sources.join(', ') || 'nothing'}${r.undo ? `; what it overwrote is in ${r.undo}` : ''}`);
        return Exit.OK;
      }),
    );
}

function printMerges(merges: ArchivedMerge[]): void {
  if (!merges.length) println('no archived blocks');
  merges.forEach((m, i) => {
    const uuids = m.uuids ? ` local ${m.uuids.local.current}/${m.uuids.local.bitmap}, peer ${m.uuids.peer.current}/${m.uuids.peer.bitmap}` : '';
    println(`${m.id ?? '(no identity)'}${i === merges.length - 1 ? ' (newest)' : ''}: started ${m.startedAt ?? 'unknown'},${uuids}; ${formatBytes(m.bytes)} in ${m.entries} range(s) from ${m.sources.join(', ')}`);
  });
}

type MergeCliOptions = PeerOptions & {
  onConflict?: 'prefer-local' | 'prefer-peer';
  archive?: string;
  verify: 'changed' | 'full' | 'none';
  journal?: string;
  dryRun?: boolean;
  yes?: boolean;
  /** false with --no-lvm (commander's negation). */
  lvm?: boolean;
  csumsAlg?: string;
  handbackTimeout: string;
};

function parseSeconds(v: string, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new RangeError(`${what} must be a whole number of seconds (at least 1), got '${v}'`);
  return Number(v) * 1000;
}

/** f, called the first time only. */
function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) f();
    done = true;
  };
}

/** What holds a DRBD device here (device-mapper/LVM on top, from sysfs), for the online refusal messages. */
function deviceUsers(drbdDevice: string): string[] {
  try {
    const name = path.basename(fs.realpathSync(drbdDevice));
    return fs.readdirSync(`/sys/class/block/${name}/holders`).map((h) => {
      try {
        return fs.readFileSync(`/sys/class/block/${h}/dm/name`, 'utf8').trim();
      } catch {
        return h;
      }
    });
  } catch {
    return [];
  }
}

function printHandback(h: HandbackReport, copied: number): void {
  println(`handed back to DRBD ${h.drbdVersion} (csums-alg ${h.csumsAlg}): Connected ${h.final.disk}/${h.final.peerDisk}, ${h.final.outOfSyncBytes} bytes out of sync`);
  println(`  copied by drbd-bisync: ${formatBytes(copied)}; DRBD's resync: ${h.drbdResync ? `transferred ${formatBytes(h.drbdResync.transferredBytes)}, eliminated by checksum ${formatBytes(h.drbdResync.eliminatedBytes)} of ${formatBytes(h.drbdResync.totalBytes)}` : 'no checksum summary in the kernel log'}`);
  println(`  the peer waited ${(h.peerWaitMs / 1000).toFixed(1)} s (its resource down while serving, until reconnected); this node ${h.survivorStayedPrimary ? 'stayed Primary throughout' : `left Primary: roles seen ${h.rolesSeen.join(', ')}`}`);
}

function realPath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** The human conflict listing reuses printPlan over the report's plan document. */
function planFromDoc(r: MergeReport): Plan {
  return r.plan as unknown as Plan;
}

// The survivor's side of an online merge around the engine: check that this
// node may stay up (Primary, not connected), and after the copy hand the
// resource back to DRBD and wait until both nodes are UpToDate with nothing out
// of sync, watching that this node never leaves Primary.
import { BisyncError, ErrorCode } from '../device/errors';
import { ChecksumResync, DrbdMajor, checksumResyncFromLog, formatCommands, loadedDrbd, runDrbdadm, survivorCommands } from '../drbd/handback';
import type { DrbdResource } from '../drbd/resource';
import { getStatus } from '../status';
import { readKernelLog } from '../status/kernel-log';
import type { ResourceStatus, SyncProgress } from '../status/types';
import type { HandbackAccepted } from '../transport/protocol';

/** Reads this resource's state from the kernel (no split-brain log scan: not needed here). */
export async function resourceState(name: string): Promise<ResourceStatus> {
  return (await getStatus({ resource: name, kernelLog: [] })).resources[0];
}

const CONNECTED = new Set(['Connected', 'SyncSource', 'SyncTarget', 'VerifyS', 'VerifyT', 'PausedSyncS', 'PausedSyncT', 'WFBitMapS', 'WFBitMapT', 'WFSyncUUID', 'StartingSyncS', 'StartingSyncT']);

/** The survivor must be Primary with an attached disk and not connected to the peer. */
export function checkSurvivor(s: ResourceStatus): void {
  const where = `DRBD resource '${s.name}' on this node`;
  if (s.role !== 'Primary') {
    throw new BisyncError(ErrorCode.REFUSED, `${where} is ${s.role}, not Primary: the online merge runs on the surviving Primary`, {
      hint: 'run it on the node whose VMs keep running; or bring the resource down on both nodes and use the offline merge',
    });
  }
  if (s.disk !== 'UpToDate') throw new BisyncError(ErrorCode.REFUSED, `${where} has disk state ${s.disk}, not UpToDate`);
  if (CONNECTED.has(s.connection)) {
    throw new BisyncError(ErrorCode.REFUSED, `${where} is ${s.connection} with its peer: there is no split brain to merge`);
  }
}

export interface HandbackOptions {
  /** csums-alg for both connects (default: the resource's, else md5). */
  csumsAlg: string;
  timeoutMs: number;
  pollMs?: number;
  onProgress?: (s: ResourceStatus, sync: SyncProgress | undefined) => void;
  log?: (line: string) => void;
}

export interface HandbackReport {
  drbdVersion: string;
  csumsAlg: string;
  peerCommands: string[];
  localCommands: string[];
  /** How long the peer's resource was down: serving before the hand-back, plus until Connected UpToDate/UpToDate here. */
  peerWaitMs: number;
  /**
   * How long until the peer was back in the cluster: serving before the hand-back, plus until this node first
   * saw it connected (Connected, SyncSource, WFBitMapS...). From then DRBD serves the peer's reads of blocks still
   * out of sync from here while the checksum resync finishes in the background.
   */
  peerConnectedWaitMs: number;
  /** From the hand-back request to Connected UpToDate/UpToDate, oos 0. */
  handbackMs: number;
  /** Every sample of this node's role during the merge and the hand-back was Primary. */
  survivorStayedPrimary: boolean;
  rolesSeen: string[];
  /** DRBD's checksum-based resync as the kernel log summarised it (null when no such line was found). */
  drbdResync: ChecksumResync | null;
  final: { connection: string; disk: string; peerDisk: string; outOfSyncBytes: number };
}

/** Samples this node's role; any sample other than Primary is remembered. */
export class RoleWatch {
  readonly seen = new Set<string>();

  note(s: ResourceStatus): ResourceStatus {
    this.seen.add(s.role);
    return s;
  }

  get stayedPrimary(): boolean {
    return this.seen.size === 1 && this.seen.has('Primary');
  }
}

export interface SyncWait {
  final: ResourceStatus;
  /** ms from t0 to the first sample connected to the peer (any of CONNECTED). */
  connectedMs: number;
  /** ms from t0 to Connected UpToDate/UpToDate with nothing out of sync. */
  syncedMs: number;
}

/**
 * Polls this node's state until Connected UpToDate/UpToDate, oos 0, noting every role and when the peer was
 * first seen connected: the peer is back in the cluster from then, long before a large resync ends.
 */
export async function waitForSync(name: string, read: () => Promise<ResourceStatus>, roles: RoleWatch, t0: number,
  opts: Pick<HandbackOptions, 'timeoutMs' | 'pollMs' | 'onProgress'>, now: () => number = Date.now): Promise<SyncWait> {
  let connectedMs: number | undefined;
  for (;;) {
    const s = roles.note(await read());
    if (connectedMs === undefined && CONNECTED.has(s.connection)) connectedMs = now() - t0;
    opts.onProgress?.(s, s.syncProgress);
    if (s.connection === 'Connected' && s.disk === 'UpToDate' && s.peerDisk === 'UpToDate' && s.outOfSyncBytes === 0) {
      return { final: s, connectedMs: connectedMs!, syncedMs: now() - t0 };
    }
    if (now() - t0 > opts.timeoutMs) {
      throw new BisyncError(ErrorCode.REFUSED,
        `DRBD resource '${name}' did not reach Connected UpToDate/UpToDate with nothing out of sync within ${Math.round(opts.timeoutMs / 1000)} s (now ${s.connection} ${s.disk}/${s.peerDisk}, ${s.outOfSyncBytes} bytes out of sync)`,
        { hint: 'the data is copied; check both nodes with `drbd-bisync status` (the peer must have connected with --discard-my-data)' });
    }
    await new Promise((res) => setTimeout(res, opts.pollMs ?? 500));
  }
}

/**
 * After the copy: ask the peer's agent to hand back (askPeer must also end the session: the agent
 * acts only once its device is released; close the local endpoint too). The agent attaches and connects with
 * --discard-my-data once its session ends), connect here with the same csums-alg,
 * and wait for Connected UpToDate/UpToDate with nothing out of sync.
 */
export async function handBack(r: DrbdResource, minor: number, askPeer: (csumsAlg: string) => Promise<HandbackAccepted>, roles: RoleWatch, opts: HandbackOptions): Promise<HandbackReport> {
  const drbd = loadedDrbd();
  const t0 = Date.now();
  const logBefore = (readKernelLog() ?? []).length; // only this resync's summary counts
  const accepted = await askPeer(opts.csumsAlg);
  const before = roles.note(await resourceState(r.name));
  const cmds = survivorCommands(r, drbd.major as DrbdMajor, opts.csumsAlg, before.connection);
  await runDrbdadm(r, cmds, opts.log);
  const w = await waitForSync(r.name, () => resourceState(r.name), roles, t0, opts);
  const s = w.final;
  return {
    drbdVersion: drbd.version,
    csumsAlg: opts.csumsAlg,
    peerCommands: accepted.commands,
    localCommands: formatCommands(cmds),
    peerWaitMs: accepted.servingMs + w.syncedMs,
    peerConnectedWaitMs: accepted.servingMs + w.connectedMs,
    handbackMs: w.syncedMs,
    survivorStayedPrimary: roles.stayedPrimary,
    rolesSeen: [...roles.seen],
    drbdResync: checksumResyncFromLog((readKernelLog() ?? []).slice(logBefore), r.name, minor),
    final: { connection: s.connection, disk: s.disk, peerDisk: s.peerDisk, outOfSyncBytes: s.outOfSyncBytes },
  };
}

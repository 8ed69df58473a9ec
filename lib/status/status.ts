// getStatus(): DRBD's state from the kernel over generic netlink, falling
// back to /proc/drbd (8.4) or `drbdsetup events2 --now --statistics` (9).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { BisyncError } from '../device/errors';
import { DrbdCmd, DrbdFamily, drbdDump, resolveDrbdFamily, resourcesFromGetStatus, resourcesFromObjects } from './drbd-genl';
import { parseEvents2 } from './events2';
import { FamilyNotFoundError, withGenlSocket } from './genl';
import { readKernelLog, splitBrainInLog } from './kernel-log';
import { parseProcDrbd, resourcesFromProc } from './proc-drbd';
import type { DrbdStatus, ResourceStatus, StatusSource } from './types';

const run = promisify(execFile);

export interface StatusOptions {
  /** Only this resource (an unknown name is an error). */
  resource?: string;
  /** Force one source; default tries netlink, then /proc/drbd, then events2. */
  source?: StatusSource | 'auto';
  /** For 8.4 over netlink: use the object dumps (30..33) instead of GET_STATUS. */
  netlinkObjects?: boolean;
  /** Kernel log lines for split-brain evidence (default: read /dev/kmsg; [] to skip). */
  kernelLog?: string[];
  procPath?: string;
}

export async function getStatus(opts: StatusOptions = {}): Promise<DrbdStatus> {
  const source = opts.source ?? 'auto';
  if (!['auto', 'netlink', 'proc', 'events2'].includes(source)) throw new RangeError(`status source must be auto, netlink, proc or events2, got '${source}'`);
  let status: DrbdStatus;
  if (source !== 'auto') status = await fromSource(source, opts);
  else status = await autoSource(opts);
  markSplitBrain(status.resources, opts.kernelLog ?? readKernelLog() ?? []);
  if (opts.resource !== undefined) {
    status.resources = status.resources.filter((r) => r.name === opts.resource);
    if (!status.resources.length) {
      throw new BisyncError('ERR_REFUSED', `DRBD resource '${opts.resource}' is not configured in the kernel (source: ${status.source})`, {
        hint: 'list the configured resources with `drbd-bisync status`',
      });
    }
  }
  return status;
}

async function autoSource(opts: StatusOptions): Promise<DrbdStatus> {
  const reasons: string[] = [];
  try {
    return await fromNetlink(opts);
  } catch (e) {
    if (e instanceof FamilyNotFoundError) throw e; // no module: /proc/drbd and drbdsetup know nothing either
    reasons.push(`netlink: ${(e as Error).message}`);
  }
  const procPath = opts.procPath ?? '/proc/drbd';
  if (fs.existsSync(procPath)) {
    const proc = parseProcDrbd(fs.readFileSync(procPath, 'utf8'));
    if (proc.api === 1) return { ...(await fromProcText(proc)), fallbackReasons: reasons };
    reasons.push(`proc: ${procPath} is DRBD ${proc.version ?? '?'} (api ${proc.api ?? '?'}), which lists no devices there`);
  } else reasons.push(`proc: ${procPath} does not exist`);
  try {
    return { ...(await fromEvents2()), fallbackReasons: reasons };
  } catch (e) {
    reasons.push(`events2: ${(e as Error).message}`);
  }
  throw new BisyncError('ERR_REFUSED', `cannot read the DRBD state:\n  ${reasons.join('\n  ')}`, { hint: 'run as root on a node with the drbd module loaded' });
}

async function fromSource(source: StatusSource, opts: StatusOptions): Promise<DrbdStatus> {
  if (source === 'netlink') return fromNetlink(opts);
  if (source === 'events2') return fromEvents2();
  const procPath = opts.procPath ?? '/proc/drbd';
  let text: string;
  try {
    text = fs.readFileSync(procPath, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new FamilyNotFoundError('drbd', `ENOENT: ${procPath} does not exist: the drbd kernel module is not loaded`, 'load it with `modprobe drbd`');
    throw e;
  }
  return fromProcText(parseProcDrbd(text));
}

/** Over generic netlink: GET_STATUS on 8.4 (it carries UUIDs and resync counters), the object dumps on 9. */
export async function fromNetlink(opts: { netlinkObjects?: boolean } = {}): Promise<DrbdStatus> {
  return withGenlSocket(async (sock) => {
    const fam = await resolveDrbdFamily(sock);
    const resources = await netlinkResources(sock, fam, !!opts.netlinkObjects);
    return { source: 'netlink', api: fam.version, resources };
  });
}

async function netlinkResources(sock: Parameters<typeof drbdDump>[0], fam: DrbdFamily, preferObjects: boolean): Promise<ResourceStatus[]> {
  if (fam.hasGetStatus && !(preferObjects && fam.hasObjectDumps)) return resourcesFromGetStatus(await drbdDump(sock, fam, DrbdCmd.GET_STATUS));
  if (!fam.hasObjectDumps) {
    throw new BisyncError('ERR_PROTOCOL', `the drbd netlink family (version ${fam.version}) offers neither GET_STATUS nor the object dumps (ops: ${fam.ops.map((o) => o.id).join(',')})`);
  }
  const [resources, devices, connections, peerDevices] = [
    await drbdDump(sock, fam, DrbdCmd.GET_RESOURCES),
    await drbdDump(sock, fam, DrbdCmd.GET_DEVICES),
    await drbdDump(sock, fam, DrbdCmd.GET_CONNECTIONS),
    await drbdDump(sock, fam, DrbdCmd.GET_PEER_DEVICES),
  ];
  return resourcesFromObjects(fam.version, { resources, devices, connections, peerDevices });
}

async function fromProcText(proc: ReturnType<typeof parseProcDrbd>): Promise<DrbdStatus> {
  const doc: DrbdStatus = { source: 'proc', resources: resourcesFromProc(proc, await minorNames()) };
  if (proc.version) doc.version = proc.version;
  if (proc.api !== undefined) doc.api = proc.api;
  return doc;
}

/** /proc/drbd has no names: ask the kernel (`drbdsetup show`), else this host's configuration (drbdadm). */
export async function minorNames(): Promise<Map<number, [string, number]>> {
  try {
    const map = namesFromDrbdsetupShow((await run('drbdsetup', ['show'], { timeout: 10000 })).stdout);
    if (map.size) return map;
  } catch {
    // fall through to the configuration
  }
  const map = new Map<number, [string, number]>();
  try {
    const { stdout } = await run('drbdadm', ['sh-resources'], { timeout: 10000 });
    for (const name of stdout.trim().split(/\s+/).filter(Boolean)) {
      const minors = (await run('drbdadm', ['sh-minor', name], { timeout: 10000 })).stdout.trim().split(/\s+/).filter(Boolean);
      minors.forEach((m, volume) => map.set(Number(m), [name, volume]));
    }
  } catch {
    // No configuration readable: minors stay "minor-N".
  }
  return map;
}

/** minor -> [resource, volume] from `drbdsetup show` ("resource r0 {" ... "volume 0 {" ... "device minor 0;"). */
export function namesFromDrbdsetupShow(text: string): Map<number, [string, number]> {
  const map = new Map<number, [string, number]>();
  let resource: string | undefined;
  let volume = 0;
  for (const line of text.split('\n')) {
    const r = /^resource\s+"?([^\s"{]+)"?\s*\{/.exec(line);
    if (r) {
      resource = r[1];
      volume = 0;
      continue;
    }
    const v = /^\s*volume\s+(\d+)\s*\{/.exec(line);
    if (v) volume = Number(v[1]);
    const d = /^\s*device\s+minor\s+(\d+);/.exec(line);
    if (d && resource) map.set(Number(d[1]), [resource, volume]);
  }
  return map;
}

export async function fromEvents2(): Promise<DrbdStatus> {
  let stdout: string;
  try {
    ({ stdout } = await run('drbdsetup', ['events2', '--now', '--statistics'], { timeout: 15000, maxBuffer: 64 * 1024 * 1024 }));
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(err.code === 'ENOENT' ? 'drbdsetup is not installed' : `drbdsetup events2 failed: ${(err.stderr || err.message).trim()}`);
  }
  const api = moduleApi();
  return { source: 'events2', api, resources: parseEvents2(stdout, api).resources };
}

/** 1 for an 8.4 module (api:1 in /proc/drbd), which names its states the 8.4 way; else 2. */
export function moduleApi(): number {
  return /\(api:1\//.test(readIfExists('/proc/drbd')) ? 1 : 2;
}

function readIfExists(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** StandAlone plus a split-brain message newer than the last reconnect. */
export function markSplitBrain(resources: ResourceStatus[], kernelLog: string[]): void {
  for (const r of resources) {
    if (r.connection !== 'StandAlone' || r.splitBrain) continue;
    if (splitBrainInLog(kernelLog, r.name, r.minors)) {
      r.splitBrain = true;
      r.splitBrainEvidence = 'kernel-log';
    }
  }
}

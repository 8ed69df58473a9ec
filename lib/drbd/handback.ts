// Giving a resource back to DRBD after an online merge. The other node O
// attaches as Secondary WITHOUT connecting (`drbdadm up` would connect plainly,
// meet the split brain and drop), then connects with --discard-my-data; the
// survivor S connects too. Both pass the same csums-alg on the command line
// (DRBD refuses peers that differ), so the resync DRBD runs from S skips every
// block whose checksums already match: the blocks drbd-bisync copied into S.
//
// DRBD 8.4 (drbdadm hands over to drbdadm-84): new-resource, new-minor, attach;
// `drbdadm -- --discard-my-data --csums-alg=X connect R`.
// DRBD 9: `drbdadm adjust --skip-net R` (new-resource, new-minor, attach), then
// per connection `new-peer` (csums-alg is a per-connection net option there),
// `new-path`, `connect --discard-my-data R:PEER`. Written from drbd-utils 9.22's
// dry runs and the DRBD 9 documentation; the lab runs only DRBD 8.4.
import * as fs from 'node:fs';
import { BisyncError, ErrorCode } from '../device/errors';
import { DrbdResource, drbdadm } from './resource';

export type DrbdMajor = 8 | 9;

/** The loaded module's major version, from /proc/drbd ("version: 8.4.11 (api:1/...)"). */
export function loadedDrbd(proc = '/proc/drbd'): { major: DrbdMajor; version: string } {
  let text: string;
  try {
    text = fs.readFileSync(proc, 'utf8');
  } catch {
    throw new BisyncError(ErrorCode.REFUSED, `the drbd kernel module is not loaded (${proc} cannot be read)`, { hint: 'modprobe drbd' });
  }
  const m = /version:\s*(\d+)\.(\d+)\.(\S+)/.exec(text);
  if (!m) throw new BisyncError(ErrorCode.BAD_METADATA, `${proc} names no DRBD version: ${JSON.stringify(text.split('\n')[0])}`);
  return { major: Number(m[1]) >= 9 ? 9 : 8, version: `${m[1]}.${m[2]}.${m[3]}` };
}

const csumsOpt = (alg: string | null): string[] => (alg ? [`--csums-alg=${alg}`] : []);

/** The drbdadm argument lists the discarding node O runs, in order. */
export function targetCommands(r: DrbdResource, major: DrbdMajor, csumsAlg: string | null): string[][] {
  if (major === 8) {
    return [['new-resource', r.name], ['new-minor', r.name], ['attach', r.name], ['--', '--discard-my-data', ...csumsOpt(csumsAlg), 'connect', r.name]];
  }
  const cmds: string[][] = [['adjust', '--skip-net', r.name]];
  for (const p of peersOf(r)) {
    cmds.push(['--', ...csumsOpt(csumsAlg), 'new-peer', `${r.name}:${p}`], ['new-path', `${r.name}:${p}`], ['--', '--discard-my-data', 'connect', `${r.name}:${p}`]);
  }
  return cmds;
}

/**
 * The drbdadm argument lists the survivor S runs: connect from StandAlone (8.4), or set the
 * connection's csums-alg and connect (9; a connection still Connecting only gets net-options).
 */
export function survivorCommands(r: DrbdResource, major: DrbdMajor, csumsAlg: string | null, connection: string): string[][] {
  const standAlone = connection === 'StandAlone';
  if (major === 8) {
    if (standAlone) return [['--', ...csumsOpt(csumsAlg), 'connect', r.name]];
    return csumsAlg ? [['--', `--csums-alg=${csumsAlg}`, 'net-options', r.name]] : [];
  }
  const cmds: string[][] = [];
  for (const p of peersOf(r)) {
    if (csumsAlg) cmds.push(['--', `--csums-alg=${csumsAlg}`, 'net-options', `${r.name}:${p}`]);
    if (standAlone) cmds.push(['connect', `${r.name}:${p}`]);
  }
  return cmds;
}

function peersOf(r: DrbdResource): string[] {
  if (r.peers.length !== 1) {
    throw new BisyncError(ErrorCode.REFUSED, `DRBD resource '${r.name}' has ${r.peers.length} peers (${r.peers.join(', ') || 'none'}): an online merge is between two nodes`);
  }
  return r.peers;
}

/** Runs the lists one after the other; the first failure stops with drbdadm's words and the command. */
export async function runDrbdadm(r: DrbdResource, cmds: string[][], log?: (line: string) => void): Promise<void> {
  for (const args of cmds) {
    log?.(`drbdadm ${args.join(' ')}`);
    await drbdadm(args, { config: r.config, resource: r.name });
  }
}

export const formatCommands = (cmds: string[][]): string[] => cmds.map((c) => `drbdadm ${c.join(' ')}`);

/** From the SyncSource's kernel log: "... had equal checksums, eliminated: 8192K; transferred 6144K total 14336K". */
export interface ChecksumResync {
  eliminatedBytes: number;
  transferredBytes: number;
  totalBytes: number;
}

export function checksumResyncFromLog(lines: string[], resource: string, minor: number): ChecksumResync | null {
  const about = new RegExp(`\\bdrbd (${resource.replace(/[.+]/g, '\\$&')}(/\\d+)?|drbd${minor})\\b|\\bdrbd${minor}:|\\bminor-${minor}\\b`);
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /eliminated: (\d+)K; transferred (\d+)K total (\d+)K/.exec(lines[i]);
    if (m && about.test(lines[i])) return { eliminatedBytes: Number(m[1]) * 1024, transferredBytes: Number(m[2]) * 1024, totalBytes: Number(m[3]) * 1024 };
  }
  return null;
}

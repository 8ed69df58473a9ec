// A DRBD resource's devices as this node's DRBD configuration names them,
// asked of drbdadm itself (its `sh-*` commands read the configuration only, so
// they work while the resource is down and even without the kernel module).
// drbdadm of drbd-utils 9 hands over to its 8.4 flavour when an 8.4 module is
// loaded; both print the same sh-* answers.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { BisyncError, ErrorCode } from '../device/errors';

const exec = promisify(execFile);

export interface ResourceVolume {
  /** The DRBD device, e.g. /dev/drbd0. */
  device: string;
  minor: number;
  /** The backing ("lower level") device. */
  backing: string;
  /** The meta-data device: the backing device itself for internal meta-data. */
  metaDevice: string;
  /** 'internal', 'flex' (flexible external) or an index on an indexed external meta-data device. */
  metaIndex: 'internal' | 'flex' | number;
}

export interface DrbdResource {
  name: string;
  /** The configuration file asked (undefined: drbdadm's default, /etc/drbd.conf). */
  config?: string;
  volumes: ResourceVolume[];
  /** The `csums-alg` of the resource's net section, or null when it has none. */
  csumsAlg: string | null;
  /** DRBD 9: the names of the resource's connections (peer host names), for `R:PEER` commands. */
  peers: string[];
}

export interface ResolveOptions {
  /** drbdadm's `-c FILE`. */
  config?: string;
  /** The drbdadm binary (default: drbdadm on PATH). */
  drbdadm?: string;
}

/** Runs `drbdadm [-c FILE] ARGS` and returns stdout; a failure names the resource and drbdadm's own words. */
export async function drbdadm(args: string[], opts: ResolveOptions & { resource: string }): Promise<string> {
  const full = [...(opts.config ? ['-c', opts.config] : []), ...args];
  try {
    const { stdout } = await exec(opts.drbdadm ?? 'drbdadm', full, { encoding: 'utf8' });
    return stdout;
  } catch (e) {
    const x = e as NodeJS.ErrnoException & { stderr?: string };
    if (x.code === 'ENOENT') {
      throw new BisyncError(ErrorCode.REFUSED, `DRBD resource '${opts.resource}': drbdadm is not installed (${opts.drbdadm ?? 'drbdadm'} not found)`, { hint: 'install drbd-utils, or give the devices with --device' });
    }
    // drbdadm prints a modinfo complaint when the module is missing; it is noise here.
    const said = (x.stderr ?? '').split('\n').filter((l) => l.trim() && !l.startsWith('modinfo:')).join('; ').trim();
    throw new BisyncError(ErrorCode.REFUSED, `DRBD resource '${opts.resource}': \`drbdadm ${full.join(' ')}\` failed: ${said || x.message}`, {
      hint: opts.config ? `check the resource name and ${opts.config}` : 'check the resource name (`drbdadm sh-resources` lists them) and /etc/drbd.conf',
    });
  }
}

const lines = (s: string): string[] => s.split('\n').map((l) => l.trim()).filter(Boolean);

/** Resolves a resource's volumes, csums-alg and connection names from the DRBD configuration. */
export async function resolveResource(name: string, opts: ResolveOptions = {}): Promise<DrbdResource> {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.+-]+$/.test(name)) throw new RangeError(`DRBD resource name must be letters, digits or _.+-, got ${JSON.stringify(name)}`);
  if (opts.config !== undefined && !fs.existsSync(opts.config)) throw new BisyncError(ErrorCode.REFUSED, `DRBD configuration file '${opts.config}' does not exist (for resource '${name}')`);
  const ask = (cmd: string) => drbdadm([cmd, name], { ...opts, resource: name }).then(lines);
  const [devs, minors, lls, mds, idxs, dump] = await Promise.all([
    ask('sh-dev'), ask('sh-minor'), ask('sh-ll-dev'), ask('sh-md-dev'), ask('sh-md-idx'), drbdadm(['dump', name], { ...opts, resource: name }),
  ]);
  const n = devs.length;
  if (!n || [minors, lls, mds, idxs].some((l) => l.length !== n)) {
    throw new BisyncError(ErrorCode.BAD_METADATA,
      `DRBD resource '${name}': drbdadm gave ${n} device(s), ${minors.length} minor(s), ${lls.length} backing device(s), ${mds.length} meta-data device(s), ${idxs.length} meta-data index(es)`,
      { hint: 'every volume needs a disk and meta-disk on this host (diskless volumes cannot be merged)' });
  }
  const volumes = devs.map((device, i): ResourceVolume => ({
    device,
    minor: parseMinor(minors[i], name),
    backing: lls[i],
    metaDevice: mds[i],
    metaIndex: parseMetaIndex(idxs[i], name),
  }));
  return { name, config: opts.config, volumes, ...parseDump(dump) };
}

function parseMinor(text: string, name: string): number {
  if (!/^\d+$/.test(text)) throw new BisyncError(ErrorCode.BAD_METADATA, `DRBD resource '${name}': drbdadm sh-minor printed '${text}', not a minor number`);
  return Number(text);
}

/** sh-md-idx prints "internal", "flexible" (flex-external) or the index of an indexed external meta-data device. */
export function parseMetaIndex(text: string, name: string): ResourceVolume['metaIndex'] {
  if (text === 'internal') return 'internal';
  if (text === 'flexible' || text === 'flex-external' || text === 'flexible-external') return 'flex';
  if (/^\d+$/.test(text)) return Number(text);
  throw new BisyncError(ErrorCode.BAD_METADATA, `DRBD resource '${name}': drbdadm sh-md-idx printed '${text}', not internal, flexible or an index`);
}

/**
 * From `drbdadm dump R`: the net section's csums-alg (the same net section
 * both nodes read, or per connection in DRBD 9: the first one found), and the
 * peer host names (the `on HOST` sections other than this host's).
 */
export function parseDump(text: string, hostname = os.hostname()): { csumsAlg: string | null; peers: string[] } {
  const csums = /^\s*csums-alg\s+([^;\s]+)\s*;/m.exec(text)?.[1] ?? null;
  const hosts = [...text.matchAll(/^\s*on\s+([^\s{]+)\s*\{/gm)].map((m) => m[1]);
  const short = hostname.split('.')[0];
  const peers = [...new Set(hosts.filter((h) => h !== hostname && h !== short))];
  return { csumsAlg: csums, peers };
}

/** The one volume a merge works on: the only one, or the one named. */
export function pickVolume(r: DrbdResource, volume?: number): ResourceVolume {
  if (volume === undefined) {
    if (r.volumes.length !== 1) {
      throw new BisyncError(ErrorCode.REFUSED, `DRBD resource '${r.name}' has ${r.volumes.length} volumes (${r.volumes.map((v) => v.device).join(', ')}); give --volume N`);
    }
    return r.volumes[0];
  }
  const v = r.volumes[volume];
  if (!v) throw new RangeError(`--volume must be 0 to ${r.volumes.length - 1} for DRBD resource '${r.name}', got ${volume}`);
  return v;
}

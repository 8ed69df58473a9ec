// DRBD 8.4 operations on the lab's two guests: one resource r0 on /dev/vda with
// internal meta-data, replicated over the private link. Every check reads the
// guest's own /proc/drbd.
import * as fs from 'node:fs';
import { Guest, Lab } from './lab';

export const RESOURCE = 'r0';
export const DRBD_DEVICE = '/dev/drbd0';
export const BACKING = '/dev/vda';
const CONF = '/run/lab/r0.conf';

/** drbdadm with the lab's config file (drbdadm picks its 8.4 flavour from /proc/drbd). */
export const drbdadm = (args: string) => `drbdadm -c ${CONF} ${args}`;

export function resourceConfig(lab: Lab, resyncRate = '200M'): string {
  const on = (g: Guest) => `  on ${g.name} {\n    address ${g.ip}:7789;\n  }\n`;
  return `resource ${RESOURCE} {
  protocol C;
  device ${DRBD_DEVICE} minor 0;
  disk ${BACKING};
  meta-disk internal;
  disk { resync-rate ${resyncRate}; c-plan-ahead 0; }
  net { verify-alg crc32c; }
${on(lab.a)}${on(lab.b)}}
`;
}

/** One device's line pair from /proc/drbd, parsed. */
export interface DrbdState {
  cs: string;
  ro?: string;
  ds?: string;
  oos?: number;
  /** KiB sent and received over the network and written to disk since the minor was created (`up`). */
  ns?: number;
  nr?: number;
  dw?: number;
  raw: string;
}

export function parseProcDrbd(text: string, minor = 0): DrbdState {
  const m = new RegExp(`^\\s*${minor}: (.*)$`, 'm').exec(text);
  if (!m) return { cs: 'Unconfigured', raw: text };
  const field = (k: string) => new RegExp(`\\b${k}:(\\S+)`).exec(text.slice(m.index))?.[1];
  const num = (k: string) => {
    const v = field(k);
    return v === undefined ? undefined : Number(v);
  };
  return { cs: field('cs') ?? '?', ro: field('ro'), ds: field('ds'), oos: num('oos'), ns: num('ns'), nr: num('nr'), dw: num('dw'), raw: text };
}

export async function procDrbd(g: Guest): Promise<DrbdState> {
  return parseProcDrbd(await g.ok('cat /proc/drbd'));
}

/** Polls /proc/drbd until pred holds; throws with the last state on timeout. */
export async function waitState(g: Guest, pred: (s: DrbdState) => boolean, what: string, timeoutMs = 120_000): Promise<DrbdState> {
  const t0 = Date.now();
  for (;;) {
    const s = await procDrbd(g);
    if (pred(s)) return s;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${g.name}: waited ${timeoutMs} ms for ${what}; /proc/drbd:\n${s.raw}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const isSynced = (s: DrbdState) => s.cs === 'Connected' && s.ds === 'UpToDate/UpToDate' && s.oos === 0;

export async function waitSynced(lab: Lab, timeoutMs = 180_000): Promise<DrbdState[]> {
  return Promise.all(lab.nodes.map((g) => waitState(g, isSynced, 'Connected UpToDate/UpToDate oos:0', timeoutMs)));
}

/** Writes the config to both shares. */
export async function configure(lab: Lab, resyncRate?: string): Promise<void> {
  const conf = resourceConfig(lab, resyncRate);
  await Promise.all(lab.nodes.map((g) => g.ok(`cat > ${CONF} <<'EOF'\n${conf}EOF`)));
}

/** Fresh meta-data on both nodes (the resource must be down). */
export async function createMd(lab: Lab): Promise<void> {
  await Promise.all(lab.nodes.map((g) => g.ok(`${drbdadm(`-- --force create-md ${RESOURCE}`)} 2>&1`)));
}

/** drbdadm's own give-up when a drbdsetup child is slow: an emulator stall, not a DRBD answer. */
const DRBDSETUP_STALL = /did not terminate within \d+ seconds/;

export async function up(g: Guest): Promise<void> {
  // The host may have rewritten the backing disk: drop what the guest cached of it.
  const script = `blockdev --flushbufs ${BACKING}; echo 3 > /proc/sys/vm/drop_caches; ${drbdadm(`up ${RESOURCE}`)}`;
  const r = await g.sh(script);
  if (r.rc === 0) return;
  // Under TCG a guest can stall past drbdadm's 5 s wait for drbdsetup (seen once in
  // CI: "drbdsetup-84 new-resource r0 did not terminate within 5 seconds"). The
  // half-made resource is taken down and the whole step tried once more; any
  // other failure, or a second stall, is the error.
  if (!DRBDSETUP_STALL.test(r.out)) throw g.failed(script, r);
  await g.sh(drbdadm(`down ${RESOURCE}`));
  await g.ok(script);
}

export async function down(g: Guest): Promise<void> {
  await g.ok(drbdadm(`down ${RESOURCE}`));
}

/**
 * Brings both nodes to Connected UpToDate/UpToDate with identical data, quickly:
 * down, copy nodea's disk to nodeb on the host, new meta-data, up, and skip the
 * initial sync (new-current-uuid --clear-bitmap on the just-created UUID).
 */
export async function resetToSynced(lab: Lab, copyDisk: (from: string, to: string) => void): Promise<void> {
  await Promise.all(lab.nodes.map((g) => g.sh(drbdadm(`down ${RESOURCE}`))));
  // Every scenario starts from zeros: an earlier one may have left an LVM PV on the
  // disk, which changes what a merge does. (up() drops the guests' caches of it.)
  const size = fs.statSync(lab.a.disk).size;
  fs.truncateSync(lab.a.disk, 0);
  fs.truncateSync(lab.a.disk, size);
  copyDisk(lab.a.disk, lab.b.disk);
  await createMd(lab);
  await Promise.all(lab.nodes.map((g) => up(g)));
  await waitState(lab.a, (s) => s.cs === 'Connected', 'Connected');
  await lab.a.ok(drbdadm(`-- --clear-bitmap new-current-uuid ${RESOURCE}`));
  await waitSynced(lab);
}

/** The usual split brain: disconnect both, make both primary (the writes come after). */
export async function splitBrain(lab: Lab): Promise<void> {
  await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`disconnect ${RESOURCE}`))));
  await Promise.all(lab.nodes.map((g) => g.ok(drbdadm(`primary ${RESOURCE}`))));
}

/** Writes a file from the share to the DRBD device at a byte offset, bypassing the cache. */
export function ddWrite(src: string, offset: number, dev = DRBD_DEVICE): string {
  if (offset % 4096) throw new RangeError(`offset ${offset} is not 4 KiB aligned`);
  return `dd if=${src} of=${dev} bs=4096 seek=${offset / 4096} oflag=direct conv=notrunc status=none`;
}

/** sha256 of a byte range of a device, read around the guest's cache. */
export function ddHash(offset: number, length: number, dev = DRBD_DEVICE): string {
  return `dd if=${dev} bs=4096 skip=${offset / 4096} count=${length / 4096} iflag=direct status=none | sha256sum | cut -c1-64`;
}

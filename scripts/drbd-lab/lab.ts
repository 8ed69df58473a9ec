// Host side of the two-node DRBD lab: boots guests with guest.sh and talks to
// each through its read-write 9p share (the guest agent runs the scripts the
// host drops there). See README.md in this folder.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { hasCommand } from '../host';

export const LAB_DIR = __dirname.includes(`${path.sep}dist${path.sep}`)
  ? path.resolve(__dirname, '../../../scripts/drbd-lab')
  : __dirname;

/** Why the lab cannot run here, or undefined when it can (the kernel is fetched by prepareLab). */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const cmd of ['qemu-system-x86_64', 'apt-get', 'dpkg', 'depmod', 'drbdadm', 'drbdmeta']) {
    if (!hasCommand(cmd)) return `needs ${cmd} installed`;
  }
  if (!fs.existsSync(process.env.DRBD_LAB_BUSYBOX ?? '/bin/busybox')) return 'needs busybox-static installed';
  return undefined;
}

/** Fetches the kernel and builds the initramfs (cached). Throws with the script's message. */
export function prepareLab(): { kernel: string; initrd: string } {
  const r = spawnSync(path.join(LAB_DIR, 'initramfs.sh'), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`preparing the lab kernel failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  const kv = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  return { kernel: kv.KERNEL, initrd: kv.INITRD };
}

export interface RunResult {
  rc: number;
  out: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let commandSeq = 0;

// Guests still running when this process exits (a test runner killed mid-way)
// would otherwise outlive it.
const runningQemu = new Set<ChildProcess>();
const killAll = () => {
  for (const q of runningQemu) q.kill('SIGKILL');
};
process.once('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });
}

/** One qemu guest: a DRBD node whose first process is the lab agent. */
export class Guest {
  private qemu?: ChildProcess;
  private exited?: Promise<void>;
  readonly share: string;

  constructor(
    readonly name: string,
    readonly ip: string,
    readonly disk: string,
    dir: string,
    private readonly netSpec: string,
  ) {
    this.share = path.join(dir, `share-${name}`);
    fs.mkdirSync(this.share, { recursive: true });
  }

  /** Where a file in the share is on the host, and in the guest. */
  hostPath(rel: string): string {
    return path.join(this.share, rel);
  }
  guestPath(rel: string): string {
    return `/run/lab/${rel}`;
  }

  get running(): boolean {
    return this.qemu !== undefined;
  }

  /** Starts qemu; resolves once the agent is up. Returns the boot time in ms. */
  async boot(timeoutMs = 180_000): Promise<number> {
    if (this.qemu) throw new Error(`guest ${this.name} is already running`);
    const t0 = Date.now();
    fs.rmSync(this.hostPath('ready'), { force: true });
    const log = fs.openSync(this.hostPath('qemu.log'), 'w');
    const qemu = spawn(path.join(LAB_DIR, 'guest.sh'), [this.name, this.disk, this.share, `${this.ip}/16`, this.netSpec], {
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    this.qemu = qemu;
    runningQemu.add(qemu);
    this.exited = new Promise((resolve) => qemu.once('exit', () => {
      runningQemu.delete(qemu);
      if (this.qemu === qemu) this.qemu = undefined;
      resolve();
    }));
    while (!fs.existsSync(this.hostPath('ready'))) {
      if (!this.qemu) throw new Error(`guest ${this.name} exited while booting: ${this.tail()}`);
      if (Date.now() - t0 > timeoutMs) {
        await this.kill();
        throw new Error(`guest ${this.name} did not come up in ${timeoutMs} ms: ${this.tail()}`);
      }
      await sleep(100);
    }
    return Date.now() - t0;
  }

  private tail(): string {
    const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').slice(-1500) : '');
    return `${read(this.hostPath('qemu.log'))}\n${read(this.hostPath('console.log'))}`.trim();
  }

  /** Pulls the plug (SIGKILL to qemu): the guest gets no chance to write anything. */
  async kill(): Promise<void> {
    const q = this.qemu;
    if (!q) return;
    q.kill('SIGKILL');
    await this.exited;
  }

  /** Starts a bash script in the guest; returns its id for wait(). */
  start(script: string): string {
    if (!this.qemu) throw new Error(`guest ${this.name} is not running`);
    const id = `${process.pid}-${++commandSeq}`;
    const tmp = this.hostPath(`cmd/.${id}.tmp`);
    fs.writeFileSync(tmp, `set -o pipefail\n${script}\n`);
    fs.renameSync(tmp, this.hostPath(`cmd/${id}.sh`)); // the agent only sees complete scripts
    return id;
  }

  /** Waits for a started script; rc -1 when it timed out. */
  async wait(id: string, timeoutMs = 300_000): Promise<RunResult> {
    const rcFile = this.hostPath(`out/${id}.rc`);
    const t0 = Date.now();
    while (!fs.existsSync(rcFile)) {
      if (!this.qemu) return { rc: -1, out: `guest ${this.name} is down\n${this.readOut(id)}` };
      if (Date.now() - t0 > timeoutMs) return { rc: -1, out: `timed out after ${timeoutMs} ms\n${this.readOut(id)}` };
      await sleep(50);
    }
    return { rc: Number(fs.readFileSync(rcFile, 'utf8').trim()), out: this.readOut(id) };
  }

  /** Waits until a started script's output matches re (e.g. a server saying it listens). */
  async waitOutput(id: string, re: RegExp, timeoutMs = 120_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const out = this.readOut(id);
      if (re.test(out)) return out;
      if (fs.existsSync(this.hostPath(`out/${id}.rc`))) throw new Error(`on ${this.name}: the script ended before printing ${re}:\n${out}`);
      if (!this.qemu || Date.now() - t0 > timeoutMs) throw new Error(`on ${this.name}: no ${re} after ${Date.now() - t0} ms:\n${out}`);
      await sleep(100);
    }
  }

  private readOut(id: string): string {
    const f = this.hostPath(`out/${id}`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
  }

  /** Runs a bash script in the guest and returns its exit status and output (DRBD_LAB_TRACE=1 logs each). */
  async sh(script: string, timeoutMs?: number): Promise<RunResult> {
    const t0 = Date.now();
    const r = await this.wait(this.start(script), timeoutMs);
    if (process.env.DRBD_LAB_TRACE) {
      process.stderr.write(`[${this.name} ${((Date.now() - t0) / 1000).toFixed(2)}s rc=${r.rc}] ${script.trim().split('\n')[0].slice(0, 100)}\n`);
    }
    return r;
  }

  /** Like sh(), but a non-zero exit is an error naming the node, the script and its output. */
  async ok(script: string, timeoutMs?: number): Promise<string> {
    const r = await this.sh(script, timeoutMs);
    if (r.rc !== 0) throw this.failed(script, r);
    return r.out;
  }

  /** The error for a script that exited non-zero: the node, the script and its output. */
  failed(script: string, r: RunResult): Error {
    return new Error(`on ${this.name}: \`${script.trim()}\` exited ${r.rc}:\n${r.out.trim()}`);
  }
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const port = sock.address().port;
      sock.close(() => resolve(port));
    });
  });
}

/** /dev/shm when it has room (containers often give it only 64 MiB), else the temp folder. */
function scratchBase(bytes: number): string {
  try {
    const st = fs.statfsSync('/dev/shm');
    if (st.bavail * st.bsize >= bytes) return '/dev/shm';
  } catch {
    /* no /dev/shm */
  }
  return os.tmpdir();
}

export interface LabOptions {
  /** Folder for the disk images and shares (default: a new one under /dev/shm). */
  dir?: string;
  /** Size of each node's backing disk (default 64 MiB). */
  diskSize?: number;
}

/** Two guests, nodea and nodeb, on a private link (169.254.0.1 and .2). */
export class Lab {
  private constructor(
    readonly dir: string,
    readonly a: Guest,
    readonly b: Guest,
  ) {}

  get nodes(): [Guest, Guest] {
    return [this.a, this.b];
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    const size = opts.diskSize ?? 64 * 1024 * 1024;
    const dir = opts.dir ?? fs.mkdtempSync(path.join(scratchBase(4 * size), 'drbd-lab-'));
    const disks = ['a', 'b'].map((n) => {
      const f = path.join(dir, `disk-${n}.img`);
      fs.writeFileSync(f, '');
      fs.truncateSync(f, size);
      return f;
    });
    // UDP socket netdev: connectionless, so either guest can be killed and rebooted.
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const a = new Guest('nodea', '169.254.0.1', disks[0], dir, `udp:${pa}:${pb}`);
    const b = new Guest('nodeb', '169.254.0.2', disks[1], dir, `udp:${pb}:${pa}`);
    return new Lab(dir, a, b);
  }

  /** Boots both guests. Returns ms. */
  async boot(): Promise<number> {
    const t0 = Date.now();
    await Promise.all(this.nodes.map((g) => g.boot()));
    return Date.now() - t0;
  }

  async close(keep = !!process.env.DRBD_LAB_KEEP): Promise<void> {
    await Promise.all(this.nodes.map((g) => g.kill()));
    if (!keep) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

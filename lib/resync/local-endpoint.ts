// An Endpoint over a device on this host: the same engine serves a local
// merge, the peer side of `--peer-device`, and the `serve` agent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode, isSystemError } from '../device/errors';
import type { Extent } from '../device/extent';
import { retryWhile } from '../device/retry';
import { DrbdMetadata } from '../drbd';
import { native } from '../native/binding';
import type { MetadataReport, MetadataUpdate } from '../drbd/types';
import { LvmReader, ReadFn } from '../lvm';
import type { LvmView, VolumeGroup } from '../lvm/types';
import type { BlockHashes, Endpoint, EndpointInfo } from '../transport/endpoint';

export interface LocalEndpointOptions {
  /** Open for writing (merge) or read-only (plan). Both are exclusive on block devices. */
  write?: boolean;
  /** External meta-data device; internal meta-data when absent. */
  metaDevice?: string;
  /** Index on the external meta-data device, or 'flex' (flexible external). */
  metaIndex?: number | 'flex';
  /** Serve the device as plain blocks, without DRBD meta-data (no change set, no meta-data writes). */
  plain?: boolean;
  /**
   * The resource is up on this node: data goes through this DRBD device (e.g. /dev/drbd0 of the
   * Primary, so DRBD sees every write), and the meta-data is read from the backing device
   * without O_EXCL while DRBD holds it. The meta-data is never written.
   */
  live?: { drbdDevice: string };
}

export class LocalEndpoint implements Endpoint {
  /** Read once: the PV cannot change while the device is held exclusively. */
  private lvmRead?: LvmReader;
  /** Live: the blocks in doubt from the last changeSet() read (see DrbdMetadata.changes). */
  private doubt?: Extent[];

  private constructor(
    readonly device: BlockDevice,
    private readonly metaDevice: BlockDevice | undefined,
    private md: DrbdMetadata | null,
    /** Live: the backing device, opened only to read the meta-data. */
    private readonly backing?: BlockDevice,
  ) {}

  /** True when the resource is up here and data goes through its DRBD device. */
  get live(): boolean {
    return this.backing !== undefined;
  }

  static async open(devicePath: string, opts: LocalEndpointOptions = {}): Promise<LocalEndpoint> {
    if (opts.live) return LocalEndpoint.openLive(devicePath, opts.live.drbdDevice, opts);
    const write = opts.write ?? false;
    const device = await openExclusive(devicePath, write);
    if (opts.plain) return new LocalEndpoint(device, undefined, null);
    let metaDevice: BlockDevice | undefined;
    try {
      if (opts.metaDevice) metaDevice = await openExclusive(opts.metaDevice, write);
      const index = opts.metaDevice ? (opts.metaIndex ?? 'flex') : 'internal';
      const md = await DrbdMetadata.read(device, { metaDevice, index });
      return new LocalEndpoint(device, metaDevice, md);
    } catch (e) {
      await metaDevice?.close();
      await device.close();
      throw e;
    }
  }

  /** Not exclusive: DRBD holds the backing device and the DRBD device stays in use by whatever runs on it. */
  private static async openLive(backingPath: string, drbdDevice: string, opts: LocalEndpointOptions): Promise<LocalEndpoint> {
    const opened: BlockDevice[] = [];
    const open = async (p: string, write: boolean): Promise<BlockDevice> => {
      const d = await BlockDevice.open(p, { write, exclusive: false });
      opened.push(d);
      return d;
    };
    try {
      const backing = await open(backingPath, false);
      const metaDevice = opts.metaDevice ? await open(opts.metaDevice, false) : undefined;
      const index = opts.metaDevice ? (opts.metaIndex ?? 'flex') : 'internal';
      const md = await DrbdMetadata.read(backing, { metaDevice, index });
      const data = await open(drbdDevice, opts.write ?? false);
      if (data.size < md.dataSize) {
        throw new BisyncError(ErrorCode.SIZE_MISMATCH, `DRBD device '${drbdDevice}' is ${data.size} bytes, smaller than the ${md.dataSize} bytes the meta-data on '${backingPath}' says`, {
          hint: 'is it the DRBD device of that backing device, and is the resource attached?',
        });
      }
      return new LocalEndpoint(data, metaDevice, md, backing);
    } catch (e) {
      await Promise.all(opened.map((d) => d.close()));
      throw e;
    }
  }

  private get metadata(): DrbdMetadata {
    if (!this.md) throw new BisyncError(ErrorCode.BAD_METADATA, `'${this.device.path}' is served as a plain device, without DRBD meta-data`);
    return this.md;
  }

  /**
   * Re-reads the superblock each time: a guard checking UUIDs must see the device, not what
   * open() saw, and the serve agent answers every peer's info request through here. Callers
   * are the plan and the guards (finalize, online gate); anything else takes what the plan read.
   */
  async info(): Promise<EndpointInfo> {
    await this.md?.reload();
    const report = this.md ? await this.md.report() : null;
    return {
      hostname: os.hostname(),
      path: this.device.path,
      size: this.device.size,
      logicalSectorSize: this.device.logicalSectorSize,
      metadata: report,
      dataSize: this.md ? this.md.dataSize : this.device.size,
    };
  }

  async changeSet(opts: { peerNodeId?: number } = {}): Promise<Extent[]> {
    const r = await this.metadata.changes(opts.peerNodeId, { live: this.live });
    this.doubt = r.doubt;
    return r.changes;
  }

  /** Live only: the doubt of the last changeSet() (the same read), else of a fresh one. */
  async doubtfulChanges(): Promise<Extent[]> {
    if (!this.live) return [];
    return this.doubt ?? (await this.metadata.changes(undefined, { live: true })).doubt;
  }

  async hash(extents: Extent[], blockSize: number): Promise<BlockHashes> {
    const digests: Buffer[] = [];
    const zero: Buffer[] = [];
    let whole: Extent[] = [];
    const hashWhole = async (): Promise<void> => {
      for await (const b of this.device.hashExtents(whole, blockSize)) {
        digests.push(b.digests);
        zero.push(b.zero);
      }
      whole = [];
    };
    for (const [off, len] of extents) {
      const rest = len % blockSize;
      if (len > rest) whole.push([off, len - rest]);
      if (!rest) continue;
      // A usable size that is no multiple of the block size leaves a partial
      // last block, which the block-granular native hash refuses: hash it here.
      await hashWhole();
      const tail = await this.device.gather([[off + len - rest, rest]]);
      digests.push(native.hashBuffer(tail));
      zero.push(Buffer.from([tail.every((x) => x === 0) ? 1 : 0]));
    }
    await hashWhole();
    return { digests: Buffer.concat(digests), zero: Buffer.concat(zero) };
  }

  read(extents: Extent[]): Promise<Buffer> {
    return this.device.gather(extents);
  }

  write(extents: Extent[], data: Buffer): Promise<void> {
    return this.device.scatter(extents, data);
  }

  flush(): Promise<void> {
    return this.device.flush();
  }

  async writeMetadata(update: MetadataUpdate): Promise<MetadataReport> {
    if (this.live) throw new BisyncError(ErrorCode.REFUSED, `the meta-data on '${this.backing!.path}' belongs to the running DRBD resource: drbd-bisync does not write it`);
    await this.metadata.update(update);
    return this.metadata.report();
  }

  lvm(opts: { history?: boolean } = {}): Promise<LvmView | null> {
    return this.lvmSource().lvm(opts);
  }

  lvmVersion(seqno: number, checksum: number): Promise<VolumeGroup> {
    return this.lvmSource().lvmVersion(seqno, checksum);
  }

  private lvmSource(): LvmReader {
    return (this.lvmRead ??= new LvmReader(this.lvmReader(), this.dataSize));
  }

  private get dataSize(): number {
    return this.md ? this.md.dataSize : this.device.size;
  }

  /** The PV is the DRBD data area: DRBD's own meta-data after it is no part of it. */
  private lvmReader(): ReadFn {
    return (offset, length) => this.device.read(offset, Math.max(0, Math.min(length, this.dataSize - offset)));
  }

  async close(): Promise<void> {
    await this.metaDevice?.close();
    await this.backing?.close();
    await this.device.close();
  }
}

/**
 * LocalEndpoint.open, waiting up to `waitMs` while the device (or its meta-data device) is
 * held by someone else, e.g. DRBD until `drbdadm down`: so an agent can be started, loaded
 * and ready before the resource goes down, and serve the moment it is released. `onWait`
 * hears why, once. Only "in use" waits; any other error fails at once.
 */
export async function openWhenReleased(devicePath: string, opts: LocalEndpointOptions, waitMs: number, onWait?: (why: BisyncError) => void, signal?: AbortSignal): Promise<LocalEndpoint> {
  const ep = await retryWhile(() => LocalEndpoint.open(devicePath, opts), {
    retryable: (e) => e instanceof BisyncError && isSystemError(e.cause) && e.cause.code === 'EBUSY',
    forMs: waitMs,
    onRetry: (e, attempt) => attempt === 1 && onWait?.(e as BisyncError),
    signal,
  });
  // Told to stop while the last open ran: that one must not be served.
  if (signal?.aborted) {
    await ep.close();
    signal.throwIfAborted();
  }
  return ep;
}

/** Opens a device exclusively; EBUSY becomes an error that says who holds it and what to run. */
export async function openExclusive(devicePath: string, write: boolean): Promise<BlockDevice> {
  try {
    return await BlockDevice.open(devicePath, { write, exclusive: true });
  } catch (e) {
    if (isSystemError(e) && e.code === 'EBUSY') {
      const holder = drbdHolder(devicePath);
      throw new BisyncError(
        ErrorCode.REFUSED,
        holder ? `'${devicePath}' is attached to DRBD (${holder})` : `'${devicePath}' is in use (mounted, or held open exclusively)`,
        { hint: holder ? 'run `drbdadm down RESOURCE` on this node first' : 'unmount it or stop what holds it (`drbdadm down RESOURCE` if DRBD does)', cause: e },
      );
    }
    throw e;
  }
}

/** "drbdN" when a DRBD minor holds the block device, from sysfs. */
function drbdHolder(devicePath: string): string | undefined {
  try {
    const name = path.basename(fs.realpathSync(devicePath));
    return fs.readdirSync(`/sys/class/block/${name}/holders`).find((h) => h.startsWith('drbd'));
  } catch {
    return undefined;
  }
}

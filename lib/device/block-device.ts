// A block device or regular file opened through the native layer. Validates
// every argument here so the native side only ever sees sane requests.
import { native } from '../native/binding';
import { BisyncError, ErrorCode, withStack } from './errors';
import { Extent, batches, checkExtent, coalesce, end, fromFlat, toFlat, totalBytes } from './extent';
import { pipelined } from './pipeline';

export interface OpenOptions {
  /** Open read-write (default read-only). */
  write?: boolean;
  /** Use O_DIRECT (default true); falls back to buffered I/O where unsupported, reported in `directFallback`. */
  direct?: boolean;
  /** O_EXCL on block devices (default: when writing): a mounted or DRBD-attached device fails with EBUSY. */
  exclusive?: boolean;
}

export interface BulkOptions {
  /** Bytes handed to one native call (default 64 MiB). */
  batchBytes?: number;
  /** Native calls in flight (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Called after each batch with the bytes done so far. */
  onProgress?: (doneBytes: number) => void;
}

export interface HashedBlocks {
  /** The extents this batch covers. */
  extents: Extent[];
  blockSize: number;
  /** 16 bytes per block (XXH3-128, canonical). */
  digests: Buffer;
  /** 1 per block when it is all zeros. */
  zero: Buffer;
}

const DEFAULT_BATCH = 64 << 20;

export function checkBlockSize(blockSize: number): void {
  if (!Number.isSafeInteger(blockSize) || blockSize < 512 || blockSize > 4 << 20 || (blockSize & (blockSize - 1)) !== 0) {
    throw new RangeError(`block size must be a power of two from 512 to 4M, got ${blockSize}`);
  }
}

export class BlockDevice {
  readonly path: string;
  readonly writable: boolean;
  readonly size: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly readOnly: boolean;
  readonly isBlockDevice: boolean;
  /** st_rdev of a block device, "major:minor". */
  readonly devno?: string;
  readonly loopBackingFile?: string;
  /** O_DIRECT is in effect. */
  readonly direct: boolean;
  /** Why O_DIRECT was asked for but not used. */
  readonly directFallback?: string;

  private fd: number;
  private pending = new Set<Promise<unknown>>();

  private constructor(path: string, writable: boolean, o: Awaited<ReturnType<typeof native.open>>) {
    this.path = path;
    this.writable = writable;
    this.fd = o.fd;
    this.size = o.size;
    this.logicalSectorSize = o.logicalSectorSize;
    this.physicalSectorSize = o.physicalSectorSize;
    this.readOnly = o.readOnly;
    this.isBlockDevice = o.isBlockDevice;
    if (o.isBlockDevice) this.devno = `${o.major}:${o.minor}`;
    if (o.loopBackingFile) this.loopBackingFile = o.loopBackingFile;
    this.direct = o.direct;
    if (o.directErrno) this.directFallback = `O_DIRECT not supported here (errno ${-o.directErrno}, EINVAL); using buffered I/O through the page cache`;
  }

  static async open(path: string, opts: OpenOptions = {}): Promise<BlockDevice> {
    if (typeof path !== 'string' || path === '') throw new TypeError(`device path must be a non-empty string, got ${JSON.stringify(path)}`);
    const write = opts.write ?? false;
    const o = await withStack(native.open(path, write, opts.direct ?? true, opts.exclusive ?? write));
    const dev = new BlockDevice(path, write, o);
    if (write && dev.readOnly) {
      await native.close(o.fd, path);
      throw Object.assign(new Error(`EROFS: read-only device, open '${path}'`), { code: 'EROFS', errno: -30, syscall: 'open', path });
    }
    return dev;
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /** Reads length bytes at position; shorter only at the end of the device. */
  async read(position: number, length: number): Promise<Buffer> {
    this.checkRange(position, length, 'read');
    const buf = Buffer.alloc(length);
    const n = await this.track(native.read(this.fd, this.path, buf, 0, length, position));
    return n === length ? buf : buf.subarray(0, n);
  }

  /** Writes buffer at position. Position and length must be sector-aligned unless the write ends at the device end. */
  async write(buffer: Buffer, position: number): Promise<void> {
    this.checkWritable();
    this.checkRange(position, buffer.length, 'write');
    this.checkAligned([position, buffer.length], this.logicalSectorSize, 'write');
    await this.track(native.write(this.fd, this.path, buffer, 0, buffer.length, position));
  }

  async flush(): Promise<void> {
    this.checkWritable();
    await this.track(native.flush(this.fd, this.path));
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    this.checkRange(offset, length, 'discard');
    this.checkAligned([offset, length], this.logicalSectorSize, 'discard');
    await this.track(native.discard(this.fd, this.path, offset, length));
  }

  async zeroOut(offset: number, length: number): Promise<void> {
    this.checkWritable();
    this.checkRange(offset, length, 'zero-out');
    this.checkAligned([offset, length], this.logicalSectorSize, 'zero-out');
    await this.track(native.zeroOut(this.fd, this.path, offset, length));
  }

  /** Per-block XXH3-128 digests of the extents, one batch at a time, in order. */
  async *hashExtents(extents: Iterable<Extent>, blockSize: number, opts: BulkOptions = {}): AsyncGenerator<HashedBlocks> {
    checkBlockSize(blockSize);
    let done = 0;
    for await (const [batch, r] of pipelined(this.validBatches(extents, blockSize, opts), (b) => this.track(native.hash(this.fd, this.path, toFlat(b), blockSize)), opts)) {
      done += totalBytes(batch);
      opts.onProgress?.(done);
      yield { extents: batch, blockSize, digests: r.digests, zero: r.zero };
    }
  }

  /** Reads the extents back to back into one buffer (for sending). */
  async gather(extents: readonly Extent[]): Promise<Buffer> {
    this.checkBatch(extents, 'gather');
    const buf = Buffer.allocUnsafe(totalBytes(extents));
    await this.track(native.gather(this.fd, this.path, toFlat(extents), buf));
    return buf;
  }

  /** Writes data to the extents, in order (the inverse of gather). */
  async scatter(extents: readonly Extent[], data: Buffer): Promise<void> {
    const total = totalBytes(extents);
    if (data.length !== total) throw new RangeError(`scatter data is ${data.length} bytes but the extents cover ${total}`);
    this.checkBatch(extents, 'scatter');
    await this.track(native.scatter(this.fd, this.path, toFlat(extents), data));
  }

  /** Waits for work in flight, then closes. Closing twice is a no-op. */
  async close(): Promise<void> {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    await Promise.allSettled([...this.pending]);
    await native.close(fd, this.path);
  }

  /** @internal the descriptor for native bulk operations between two devices. */
  handle(op: string): number {
    if (this.fd < 0) throw new BisyncError(ErrorCode.DEVICE_CLOSED, `${op} on closed device '${this.path}'`);
    return this.fd;
  }

  /** @internal counts work in flight so close() can wait for it. */
  track<T>(p: Promise<T>): Promise<T> {
    const w = withStack(p);
    this.pending.add(w);
    const done = (): void => void this.pending.delete(w);
    w.then(done, done);
    return w;
  }

  /** @internal validates extents (aligned to blockSize, inside the device) and groups them into batches. */
  *validBatches(extents: Iterable<Extent>, blockSize: number, opts: BulkOptions): Generator<Extent[]> {
    const self = this;
    // Native reads start at extent offsets: they must suit O_DIRECT too.
    const unit = Math.max(blockSize, this.logicalSectorSize);
    const checked = (function* () {
      for (const e of extents) {
        self.checkRange(e[0], e[1], 'extent');
        self.checkAligned(e, unit, 'extent');
        yield e;
      }
    })();
    const size = Math.max(blockSize, Math.floor((opts.batchBytes ?? DEFAULT_BATCH) / blockSize) * blockSize);
    yield* batches(coalesce(checked), size);
  }

  /** @internal what gather and scatter check before native code touches the device (also the transport's bulk path). */
  checkBatch(extents: readonly Extent[], op: 'gather' | 'scatter'): void {
    if (op === 'scatter') this.checkWritable();
    for (const e of extents) {
      this.checkRange(e[0], e[1], op);
      this.checkAligned(e, this.logicalSectorSize, op);
    }
  }

  private checkWritable(): void {
    this.handle('write');
    if (!this.writable) throw new BisyncError(ErrorCode.READ_ONLY, `device '${this.path}' was opened read-only`);
  }

  checkRange(offset: number, length: number, what: string): void {
    this.handle(what);
    checkExtent([offset, length], what);
    if (offset + length > this.size) {
      throw new RangeError(`${what} [${offset}, ${length}] ends at ${offset + length}, past the end of '${this.path}' (${this.size} bytes)`);
    }
  }

  /** Start on a boundary; end on one too, unless the extent ends exactly at the device end. */
  private checkAligned(e: Extent, unit: number, what: string): void {
    if (e[0] % unit !== 0 || (e[1] % unit !== 0 && end(e) !== this.size)) {
      throw new RangeError(`${what} [${e[0]}, ${e[1]}] is not aligned to ${unit} bytes on '${this.path}'`);
    }
  }
}

export { fromFlat };

// An Endpoint over a plain block device or image file with no DRBD meta-data:
// what the transport's tests and benchmark serve, and a way to move blocks
// between two hosts without DRBD. The merge engine's LocalEndpoint is the one
// that knows about meta-data.
import * as os from 'node:os';
import { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode } from '../device/errors';
import type { Extent } from '../device/extent';
import type { MetadataReport } from '../drbd/types';
import type { BlockHashes, Endpoint, EndpointInfo } from './endpoint';

export class PlainDeviceEndpoint implements Endpoint {
  private constructor(readonly device: BlockDevice) {}

  static async open(path: string, opts: { write?: boolean } = {}): Promise<PlainDeviceEndpoint> {
    return new PlainDeviceEndpoint(await BlockDevice.open(path, { write: opts.write ?? false }));
  }

  async info(): Promise<EndpointInfo> {
    const d = this.device;
    return { hostname: os.hostname(), path: d.path, size: d.size, logicalSectorSize: d.logicalSectorSize, metadata: null, dataSize: d.size };
  }

  /** A plain device keeps no record of changes. */
  changeSet(): Promise<Extent[]> {
    return Promise.reject(this.noMetadata('changeSet'));
  }

  async hash(extents: Extent[], blockSize: number): Promise<BlockHashes> {
    const digests: Buffer[] = [];
    const zero: Buffer[] = [];
    for await (const b of this.device.hashExtents(extents, blockSize)) {
      digests.push(b.digests);
      zero.push(b.zero);
    }
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

  writeMetadata(): Promise<MetadataReport> {
    return Promise.reject(this.noMetadata('writeMetadata'));
  }

  close(): Promise<void> {
    return this.device.close();
  }

  private noMetadata(op: string): BisyncError {
    return new BisyncError(ErrorCode.BAD_METADATA, `${op}: '${this.device.path}' is served as a plain device, without DRBD meta-data`);
  }
}

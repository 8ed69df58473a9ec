// Typed view of the C++ addon. Loaded with node-gyp-build: a prebuild for this
// platform when one ships, else the local node-gyp build.
import * as fs from 'node:fs';
import * as path from 'node:path';
import nodeGypBuild = require('node-gyp-build');

export interface NativeDeviceInfo {
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  readOnly: boolean;
  isBlockDevice: boolean;
  major: number;
  minor: number;
  loopBackingFile?: string;
}

export interface NativeOpened extends NativeDeviceInfo {
  fd: number;
  direct: boolean;
  /** Negative errno why O_DIRECT was refused (then a buffered descriptor is used). */
  directErrno?: number;
}

export interface NativeHashResult {
  /** 16 bytes per block: XXH3-128, canonical (big-endian) form. */
  digests: Buffer;
  /** 1 byte per block: 1 when the block is all zeros. */
  zero: Buffer;
}

/** Extents as a flat [offset, length, offset, length, ...] array. */
export type FlatExtents = Float64Array;

export interface NativeBinding {
  open(path: string, write: boolean, direct: boolean, exclusive: boolean): Promise<NativeOpened>;
  close(fd: number, path: string): Promise<void>;
  info(fd: number, path: string): Promise<NativeDeviceInfo>;
  flush(fd: number, path: string): Promise<void>;
  read(fd: number, path: string, buffer: Buffer, bufferOffset: number, length: number, position: number): Promise<number>;
  write(fd: number, path: string, buffer: Buffer, bufferOffset: number, length: number, position: number): Promise<void>;
  discard(fd: number, path: string, offset: number, length: number): Promise<void>;
  zeroOut(fd: number, path: string, offset: number, length: number): Promise<void>;
  hash(fd: number, path: string, extents: FlatExtents, blockSize: number): Promise<NativeHashResult>;
  compare(fdA: number, pathA: string, fdB: number, pathB: string, extents: FlatExtents, blockSize: number): Promise<FlatExtents>;
  copy(fdSrc: number, pathSrc: string, fdDst: number, pathDst: string, extents: FlatExtents): Promise<number>;
  gather(fd: number, path: string, extents: FlatExtents, buffer: Buffer): Promise<void>;
  scatter(fd: number, path: string, extents: FlatExtents, buffer: Buffer): Promise<void>;
  hashBuffer(buffer: Buffer): Buffer;
  [more: string]: unknown;
}

/** The package root: the nearest folder above this file with binding.gyp (works from lib/ and dist/lib/). */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`drbd-bisync: no binding.gyp above ${__dirname}`);
  }
}

export const native: NativeBinding = nodeGypBuild(packageRoot()) as NativeBinding;

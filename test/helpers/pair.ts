// Two DRBD backing devices in a chosen relation (see scripts/split-brain.ts),
// with snapshots of their data areas taken before a merge, so tests can
// compute the expected result and compare byte for byte.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Extent } from '../../lib/device/extent';
import { LOCK_MINOR } from '../../scripts/drbdmeta';
import { NodeState, PairSpec, makePair } from '../../scripts/split-brain';
import { Loop, makeLoop, tmpDir } from './env';

export interface Pair {
  dir: string;
  local: string;
  peer: string;
  dataSize: number;
  before: { local: Buffer; peer: Buffer; localFile: Buffer; peerFile: Buffer };
  cleanup(): void;
}

export function readRange(device: string, off: number, len: number): Buffer {
  const fd = fs.openSync(device, 'r');
  try {
    const b = Buffer.alloc(len);
    const n = fs.readSync(fd, b, 0, len, off);
    return b.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

export function readAll(device: string): Buffer {
  const size = fs.statSync(device).isBlockDevice()
    ? Number(execFileSync('blockdev', ['--getsize64', device], { encoding: 'utf8' }).trim())
    : fs.statSync(device).size;
  return readRange(device, 0, size);
}

/** Image files (or loop devices over them when `loop` is set) laid out per spec. */
export async function setupPair(size: number, spec: PairSpec, opts: { loop?: boolean } = {}): Promise<Pair> {
  const dir = tmpDir('bisync-pair-');
  const loops: Loop[] = [];
  let local = path.join(dir, 'local.img');
  let peer = path.join(dir, 'peer.img');
  if (opts.loop) {
    loops.push(makeLoop(size, { dir }), makeLoop(size, { dir }));
    [local, peer] = loops.map((l) => l.device);
  } else {
    for (const f of [local, peer]) {
      fs.writeFileSync(f, '');
      fs.truncateSync(f, size);
    }
  }
  const dataSize = await makePair(local, peer, spec);
  return {
    dir,
    local,
    peer,
    dataSize,
    before: { local: readRange(local, 0, dataSize), peer: readRange(peer, 0, dataSize), localFile: readAll(local), peerFile: readAll(peer) },
    cleanup() {
      loops.forEach((l) => l.detach());
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** base with `from`'s bytes laid over the ranges. */
export function overlay(base: Buffer, from: Buffer, ranges: Extent[]): Buffer {
  const out = Buffer.from(base);
  for (const [off, len] of ranges) from.copy(out, off, off, off + len);
  return out;
}

/** drbdmeta's own view: get-gi fields and bits set. */
export function drbdmetaView(device: string): { current: string; bitmap: string; history: string[]; consistent: boolean; wasUpToDate: boolean; bitsSet: number; unclean: boolean } {
  const run = (cmd: string): string =>
    execFileSync('drbdmeta', ['--force', LOCK_MINOR, 'v08', device, 'internal', cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const gi = run('get-gi').trim().split(':');
  const dump = run('dump-md');
  return {
    current: gi[0],
    bitmap: gi[1],
    history: [gi[2], gi[3]],
    consistent: gi[4] === '1',
    wasUpToDate: gi[5] === '1',
    bitsSet: Number(/# bits-set (\d+);/.exec(dump)?.[1] ?? NaN),
    unclean: dump.includes('unclean'),
  };
}

export type { NodeState, PairSpec };

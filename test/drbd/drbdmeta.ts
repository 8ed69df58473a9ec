// Test helpers around the real drbdmeta (the model and runner live in
// scripts/drbdmeta.ts): reference bit maths, seeded randomness, raw I/O.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Extent } from '../../lib/device/extent';

export * from '../../scripts/drbdmeta';

/** Byte extents of the set bits of one slot's dump words, clipped to la_size (reference implementation). */
export function wordsToExtents(words: bigint[], laSizeSect: number, bytesPerBit: number): Extent[] {
  const nBits = Math.ceil(laSizeSect / (bytesPerBit / 512));
  const size = laSizeSect * 512;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === 0n) continue;
    for (let b = 0; b < 64; b++) {
      const n = i * 64 + b;
      if (n >= nBits || ((w >> BigInt(b)) & 1n) === 0n) continue;
      const off = n * bytesPerBit;
      const len = Math.min(bytesPerBit, size - off);
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === off) last[1] += len;
      else out.push([off, len]);
    }
  }
  return out;
}

export function countBits(words: bigint[], nBits: number): number {
  let n = 0;
  for (let i = 0; i < words.length; i++) for (let b = 0; b < 64; b++) if (i * 64 + b < nBits && ((words[i] >> BigInt(b)) & 1n) === 1n) n++;
  return n;
}

/** Words with random runs of set bits below nBits. */
export function randomWords(count: number, nBits: number, rnd: () => number, runs: number): bigint[] {
  const bits = new Uint8Array(count * 64);
  for (let r = 0; r < runs; r++) {
    const start = Math.floor(rnd() * nBits);
    const len = 1 + Math.floor(rnd() * (rnd() < 0.2 ? 300 : 20));
    for (let b = start; b < Math.min(start + len, nBits); b++) bits[b] = 1;
  }
  const words: bigint[] = [];
  for (let i = 0; i < count; i++) {
    let w = 0n;
    for (let b = 63; b >= 0; b--) w = (w << 1n) | BigInt(bits[i * 64 + b]);
    words.push(w);
  }
  return words;
}

/** A seeded PRNG (mulberry32) so a failing case can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomUuid(rnd: () => number): bigint {
  return (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32));
}

export function hasDrbdmeta(): boolean {
  return spawnSync('sh', ['-c', 'command -v drbdmeta'], { stdio: 'ignore' }).status === 0;
}

export function writeAt(dev: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(dev, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function readAt(dev: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(dev, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

export { execFileSync };

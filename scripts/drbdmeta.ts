// drbdmeta, DRBD's own meta-data tool, as a library for the demo, the
// benchmarks and the tests: run it, parse its dump-md output, and build dumps
// for restore-md from a model (any UUIDs, flags and bitmap, v08 or v09).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Fmt = 'v08' | 'v09';

/** drbdmeta's placement argument: internal, flex-external or an index. */
export type Placement = 'internal' | 'flex-external' | number;

export interface Target {
  fmt: Fmt;
  /** The device holding the meta-data (backing device for internal). */
  mdDev: string;
  placement: Placement;
}

/**
 * The minor drbdmeta is told: it only names the lock file (/var/lock/drbd-147-MINOR),
 * so one per process keeps test runs side by side from failing on each other's lock.
 */
export const LOCK_MINOR = String(1000 + (process.pid % 100_000));

export function drbdmeta(t: Target, args: string[], opts: { force?: boolean } = {}): string {
  fs.mkdirSync('/run/lock', { recursive: true });
  const argv = [...(opts.force === false ? [] : ['--force']), LOCK_MINOR, t.fmt, t.mdDev, String(t.placement), ...args];
  const r = spawnSync('drbdmeta', argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`drbdmeta ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export interface PeerModel {
  bitmapIndex: number;
  bitmapUuid: bigint;
  bitmapDagtag: bigint;
  flags: number;
}

export interface DumpModel {
  fmt: Fmt;
  maxPeers: number;
  nodeId: number;
  current: bigint;
  /** v08 only. */
  bitmap: bigint;
  history: bigint[];
  flags: number;
  peers: PeerModel[];
  laSizeSect: number;
  bytesPerBit: number;
  deviceUuid: bigint;
  laPeerMaxBioSize: number;
  alStripes: number;
  alStripeSize4k: number;
  /** Per slot: the 64-bit dump words (bm_bytes / 8 / maxPeers of them). */
  words: bigint[][];
  /** From the dump comments. */
  mdOffset: number;
  alOffset: number;
  bmOffset: number;
  mdSizeSect: number;
}

const hex = (v: bigint, digits = 16): string => `0x${v.toString(16).toUpperCase().padStart(digits, '0')}`;

function parseWords(body: string): bigint[] {
  const out: bigint[] = [];
  for (const stmt of body.replace(/#.*$/gm, '').split(';')) {
    const s = stmt.trim();
    if (!s) continue;
    const m = /^(\d+)\s+times\s+(0x[0-9a-f]+)$/i.exec(s);
    if (m) {
      const v = BigInt(m[2]);
      for (let i = 0; i < Number(m[1]); i++) out.push(v);
    } else out.push(BigInt(s));
  }
  return out;
}

export function parseDump(text: string): DumpModel {
  const num = (re: RegExp): string => {
    const m = re.exec(text);
    if (!m) throw new Error(`dump has no ${re}`);
    return m[1];
  };
  const fmt = num(/^version "(v0[89])";/m) as Fmt;
  const m: DumpModel = {
    fmt,
    maxPeers: fmt === 'v09' ? Number(num(/^max-peers (\d+);/m)) : 1,
    nodeId: fmt === 'v09' ? Number(num(/^node-id (-?\d+);/m)) : -1,
    current: 0n,
    bitmap: 0n,
    history: [],
    flags: 0,
    peers: [],
    laSizeSect: Number(num(/^la-size-sect (\d+);/m)),
    bytesPerBit: Number(num(/^bm-byte-per-bit (\d+);/m)),
    deviceUuid: BigInt(num(/^device-uuid (0x[0-9A-F]+);/m)),
    laPeerMaxBioSize: Number(num(/^la-peer-max-bio-size (\d+);/m)),
    alStripes: Number(num(/^al-stripes (\d+);/m)),
    alStripeSize4k: Number(num(/^al-stripe-size-4k (\d+);/m)),
    words: [],
    mdOffset: Number(num(/^# md_offset (\d+)/m)),
    alOffset: Number(num(/^# al_offset (\d+)/m)),
    bmOffset: Number(num(/^# bm_offset (\d+)/m)),
    mdSizeSect: Number(num(/^# md_size_sect (\d+)/m)),
  };
  if (fmt === 'v08') {
    const u = /uuid \{\s*(0x[0-9A-F]+); (0x[0-9A-F]+); (0x[0-9A-F]+); (0x[0-9A-F]+);\s*flags (0x[0-9A-F]+);/.exec(text)!;
    [m.current, m.bitmap, m.history[0], m.history[1]] = [BigInt(u[1]), BigInt(u[2]), BigInt(u[3]), BigInt(u[4])];
    m.flags = Number(u[5]);
    m.words.push(parseWords(/^bm \{([^}]*)\}/m.exec(text)![1]));
  } else {
    m.current = BigInt(num(/^current-uuid (0x[0-9A-F]+);/m));
    m.flags = Number(num(/^flags (0x[0-9A-F]+);/m));
    for (const p of text.matchAll(/^peer\[(\d+)\] \{\s*bitmap-index (-?\d+);\s*bitmap-uuid (0x[0-9A-F]+);\s*bitmap-dagtag (0x[0-9A-F]+);\s*flags (0x[0-9A-F]+);/gm)) {
      m.peers[Number(p[1])] = { bitmapIndex: Number(p[2]), bitmapUuid: BigInt(p[3]), bitmapDagtag: BigInt(p[4]), flags: Number(p[5]) };
    }
    m.history = parseWords(/^history-uuids \{([^}]*)\}/m.exec(text)![1]);
    for (const b of text.matchAll(/^bitmap\[(\d+)\] \{([^}]*)\}/gm)) m.words[Number(b[1])] = parseWords(b[2]);
  }
  return m;
}

export function buildDump(m: DumpModel): string {
  const lines: string[] = [`version "${m.fmt}";`, ''];
  if (m.fmt === 'v08') {
    lines.push('uuid {', `    ${hex(m.current)}; ${hex(m.bitmap)}; ${hex(m.history[0])}; ${hex(m.history[1])};`, `    flags ${hex(BigInt(m.flags), 8)};`, '}');
  } else {
    lines.push(`max-peers ${m.maxPeers};`, `node-id ${m.nodeId};`, `current-uuid ${hex(m.current)};`, `flags ${hex(BigInt(m.flags), 8)};`);
    for (let i = 0; i < 32; i++) {
      const p = m.peers[i];
      lines.push(`peer[${i}] {`, `    bitmap-index ${p.bitmapIndex};`, `    bitmap-uuid ${hex(p.bitmapUuid)};`, `    bitmap-dagtag ${hex(p.bitmapDagtag)};`, `    flags ${hex(BigInt(p.flags), 8)};`, '}');
    }
    lines.push('history-uuids {', `    ${m.history.map((h) => `${hex(h)};`).join(' ')}`, '}');
  }
  lines.push(`la-size-sect ${m.laSizeSect};`, `bm-byte-per-bit ${m.bytesPerBit};`, `device-uuid ${hex(m.deviceUuid)};`, `la-peer-max-bio-size ${m.laPeerMaxBioSize};`, `al-stripes ${m.alStripes};`, `al-stripe-size-4k ${m.alStripeSize4k};`);
  m.words.forEach((w, slot) => {
    lines.push(m.fmt === 'v08' ? 'bm {' : `bitmap[${slot}] {`);
    for (let i = 0; i < w.length; i += 4) lines.push(`    ${w.slice(i, i + 4).map((v) => `${hex(v)};`).join(' ')}`);
    lines.push('}');
  });
  return `${lines.join('\n')}\n`;
}

/** 64-bit dump words per slot for la_size (drbdmeta's bm_bytes / 8 / maxPeers). */
export function wordsPerSlot(laSizeSect: number, bytesPerBit: number, maxPeers: number): number {
  const bits = Math.ceil(laSizeSect / (bytesPerBit / 512));
  const bits64 = Math.ceil(bits / 64) * 64;
  const bmBytes = Math.ceil(((bits64 / 8) * maxPeers) / 4096) * 4096;
  return bmBytes / 8 / maxPeers;
}

export function restore(t: Target, m: DumpModel, dir: string): void {
  const file = path.join(dir, `dump-${Math.random().toString(36).slice(2)}.txt`);
  fs.writeFileSync(file, buildDump(m));
  drbdmeta(t, ['restore-md', file]);
  fs.rmSync(file);
}

export function dump(t: Target, force = true): DumpModel {
  return parseDump(drbdmeta(t, ['dump-md'], { force }));
}

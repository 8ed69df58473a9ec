// Builds real DRBD meta-data on loop devices with drbdmeta: every format and
// placement, random UUIDs, flags and bitmaps, sizes that are not multiples of
// 4 KiB or 32 KiB.
import * as fs from 'node:fs';
import { Loop, makeLoop, tmpDir } from '../helpers/env';
import { nb } from '../../lib/drbd/native';
import { DumpModel, Fmt, Placement, Target, drbdmeta, dump, randomUuid, randomWords, readAt, restore, wordsPerSlot, writeAt } from './drbdmeta';

export interface Case {
  target: Target;
  backing: string;
  metaDevice?: string;
  index: number | 'flex' | 'internal';
  model: DumpModel;
  loops: Loop[];
  dir: string;
  cleanup(): void;
}

const MiB = 1 << 20;

export function makeCase(fmt: Fmt, placement: Placement, rnd: () => number, opts: { maxPeers?: number; peersWithSlot?: number; sectorSize?: 512 | 4096; sizeMiB?: number } = {}): Case {
  const dir = tmpDir('bisync-md-');
  const loops: Loop[] = [];
  const cleanup = (): void => {
    for (const l of loops) l.detach();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const odd = opts.sectorSize === 4096 ? 4096 * (1 + Math.floor(rnd() * 7)) : 512 * (1 + Math.floor(rnd() * 63));
    const dataSize = (opts.sizeMiB ?? 24 + Math.floor(rnd() * 80)) * MiB + odd;
    const backing = makeLoop(dataSize, { dir, sectorSize: opts.sectorSize });
    loops.push(backing);
    let mdDev = backing.device;
    if (placement !== 'internal') {
      const metaSize = placement === 'flex-external' ? 2 * MiB + 1536 : (placement + 1) * 128 * MiB + 3 * 512;
      const meta = makeLoop(metaSize, { dir, sectorSize: opts.sectorSize });
      loops.push(meta);
      mdDev = meta.device;
    }
    const target: Target = { fmt, mdDev, placement };
    const maxPeers = fmt === 'v08' ? 1 : opts.maxPeers ?? [1, 2, 4][Math.floor(rnd() * 3)];
    drbdmeta(target, fmt === 'v09' ? ['create-md', String(maxPeers)] : ['create-md']);
    const m = dump(target);
    const usable = placement === 'internal' ? m.bmOffset / 512 : Math.floor(dataSize / 512);
    m.laSizeSect = usable - Math.floor(rnd() * 40);
    m.current = randomUuid(rnd);
    m.bitmap = fmt === 'v08' ? randomUuid(rnd) : 0n;
    m.history = m.history.map(() => randomUuid(rnd));
    m.deviceUuid = randomUuid(rnd);
    m.laPeerMaxBioSize = 1 << 20;
    // Random flags, but keep the meta-data clean so drbdmeta dumps it.
    m.flags = ((Math.floor(rnd() * 0x200) & (fmt === 'v08' ? 0x17d : 0x151)) | 0x80) >>> 0;
    if (fmt === 'v09') {
      m.nodeId = Math.floor(rnd() * 4);
      const peers = [0, 1, 2, 3, 4, 5, 6, 7].filter((n) => n !== m.nodeId);
      const withSlot = Math.min(maxPeers, opts.peersWithSlot ?? 1 + Math.floor(rnd() * maxPeers));
      for (let s = 0; s < withSlot; s++) {
        const n = peers.splice(Math.floor(rnd() * peers.length), 1)[0];
        m.peers[n] = { bitmapIndex: s, bitmapUuid: randomUuid(rnd), bitmapDagtag: 0n, flags: Math.floor(rnd() * 32) & 0x1b };
      }
    }
    const nBits = Math.ceil(m.laSizeSect / 8);
    const perSlot = wordsPerSlot(m.laSizeSect, 4096, maxPeers);
    m.words = Array.from({ length: maxPeers }, () => randomWords(perSlot, nBits, rnd, Math.floor(rnd() * 200)));
    restore(target, m, dir);
    const index = placement === 'internal' ? 'internal' : placement === 'flex-external' ? 'flex' : placement;
    const model = dump(target);
    // dump-md prints 0 for v08 flags; take the word from the superblock itself.
    model.flags = readAt(mdDev, model.mdOffset + 0x38, 4).readUInt32BE(0);
    return { target, backing: backing.device, metaDevice: placement === 'internal' ? undefined : mdDev, index, model, loops, dir, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** Writes `count` update transactions ending the ring at a random tr number; returns nothing (drbdmeta is the oracle). */
export function craftAl(c: Case, rnd: () => number, count: number): void {
  const m = c.model;
  const maxExtent = Math.ceil((m.laSizeSect * 512) / (4 << 20)) + 2; // a few past the end too
  const blocks = m.alStripes * m.alStripeSize4k;
  let tr = 1000 + Math.floor(rnd() * 100000);
  for (let i = 0; i < count; i++, tr++) {
    const context = Array.from({ length: 919 }, () => (rnd() < 0.08 ? Math.floor(rnd() * maxExtent) : 0xffffffff));
    const updates: Array<[number, number]> = Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => [Math.floor(rnd() * 257), Math.floor(rnd() * maxExtent)]);
    const block = nb.alEncode({ trNumber: tr >>> 0, type: 0, contextSize: 257, contextStart: Math.floor(rnd() * 257), updates, context });
    writeAt(c.target.mdDev, m.alOffset + (tr % blocks) * 4096, block);
  }
}

/** Marks the meta-data as left by a crashed primary: unclean, primary flag set. */
export function makeUnclean(c: Case): void {
  const m = c.model;
  const sb = readAt(c.target.mdDev, m.mdOffset, 4096);
  const flags = (sb.readUInt32BE(0x38) | 0x02) & ~0x80 & ~0x100;
  sb.writeUInt32BE(flags >>> 0, 0x38);
  if (m.fmt === 'v08') sb.writeUInt32BE(0x8374026c, 0x3c);
  writeAt(c.target.mdDev, m.mdOffset, sb);
}


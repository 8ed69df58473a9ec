// Crash safety of DrbdMetadata.update(): the process is killed (SIGKILL) at
// each step; afterwards drbdmeta must accept the meta-data (apply-al, then
// dump-md without --force, as `drbdadm attach` would) and the bitmap must
// still cover every change: the bits the update sets, and until the
// superblock is written, the old bits and the activity log's extents.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { readMetadataAt } from '../../lib/drbd';
import type { Extent } from '../../lib/device/extent';
import { requires } from '../helpers/env';
import { craftAl, makeCase, makeUnclean } from './cases';
import { drbdmeta, dump, prng, randomUuid } from './drbdmeta';

const SEED = Number(process.env.BISYNC_SEED ?? Date.now() % 100000);
const ROOT = path.join(__dirname, '..', '..');
const hex = (v: bigint): string => v.toString(16).toUpperCase().padStart(16, '0');

function bitsOf(words: bigint[], nBits: number): Set<number> {
  const s = new Set<number>();
  words.forEach((w, i) => {
    if (w !== 0n) for (let b = 0; b < 64; b++) if (i * 64 + b < nBits && ((w >> BigInt(b)) & 1n) === 1n) s.add(i * 64 + b);
  });
  return s;
}

function extentBits(extents: readonly Extent[], nBits: number): Set<number> {
  const s = new Set<number>();
  for (const [o, l] of extents) for (let b = Math.floor(o / 4096); b < Math.min(Math.ceil((o + l) / 4096), nBits); b++) s.add(b);
  return s;
}

/** Runs update() in a child that kills itself at `failpoint` (none: runs to the end). */
function updateInChild(device: string, update: object, failpoint?: string): { status: number | null; signal: string | null; stderr: string } {
  const script = `require(${JSON.stringify(path.join(ROOT, 'lib', 'drbd'))}).readMetadataAt(${JSON.stringify(device)}, {}, { write: true })
    .then(async (h) => { try { await h.md.update(${JSON.stringify(update)}); } finally { await h.close(); } })
    .catch((e) => { console.error(e); process.exit(3); });`;
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, DRBD_BISYNC_MD_FAILPOINT: failpoint ?? '' } });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

describe('drbd meta-data update: crash safety', function () {
  this.timeout(600000);
  before(function () {
    requires(this, 'root', 'losetup', 'drbdmeta');
  });

  for (const failpoint of ['after-set-bits', 'after-al-fold', 'after-al-init', 'after-superblock', 'mid-clear', undefined]) {
    it(`killed ${failpoint ?? 'never'}: drbdmeta accepts the meta-data and no change is lost (seed ${SEED})`, async function () {
      const rnd = prng(SEED);
      // 9 GiB: the bitmap spans two edit chunks, so a crash can land mid-clear.
      const c = makeCase('v08', 'internal', rnd, { sizeMiB: 9 * 1024 + 7 });
      try {
        craftAl(c, rnd, 6);
        makeUnclean(c);
        const m = c.model;
        const nBits = Math.ceil(m.laSizeSect / 8);
        const dataSize = m.laSizeSect * 512;
        const h = await readMetadataAt(c.backing);
        const al = await h.md.alExtents();
        await h.close();
        assert.ok(al.length > 0);
        const set: Extent[] = [[0, 4096], [dataSize - 512, 512]];
        for (let i = 0; i < 30; i++) set.push([Math.floor((rnd() * dataSize) / 4096) * 4096, 4096 * (1 + Math.floor(rnd() * 50))]);
        const clipped = set.map(([o, l]) => [o, Math.min(l, dataSize - o)] as Extent);
        const current = hex(randomUuid(rnd));
        const r = updateInChild(c.backing, { uuids: { current, bitmap: '0' }, clearBitmap: true, setBits: clipped, clean: true }, failpoint);
        if (failpoint) assert.equal(r.signal, 'SIGKILL', r.stderr);
        else assert.equal(r.status, 0, r.stderr);

        drbdmeta(c.target, ['apply-al']); // what drbdadm attach runs first
        const after = dump(c.target, false); // accepted without --force
        const bits = bitsOf(after.words[0], nBits);
        for (const b of extentBits(clipped, nBits)) assert.ok(bits.has(b), `bit ${b} of the update is set`);
        const superblockWritten = failpoint === 'after-superblock' || failpoint === 'mid-clear' || failpoint === undefined;
        assert.equal(hex(after.current) === current, superblockWritten, 'new UUIDs exactly when the superblock was written');
        if (!superblockWritten) {
          // Old changes and the AL's extents are all still covered.
          for (const b of bitsOf(m.words[0], nBits)) assert.ok(bits.has(b), `old bit ${b} kept`);
          for (const b of extentBits(al, nBits)) assert.ok(bits.has(b), `AL bit ${b} covered`);
        }
        if (failpoint === undefined) assert.deepEqual([...bits].sort((a, b) => a - b), [...extentBits(clipped, nBits)].sort((a, b) => a - b));
      } finally {
        c.cleanup();
      }
    });
  }
});

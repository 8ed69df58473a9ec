// Fuzz properties of the LVM reader: whatever bytes a device holds, readLvm
// returns null, returns a view whose extents are consistent, or throws a
// BisyncError ERR_BAD_LVM; nothing else (no TypeError, RangeError, hang).
// Used by test/lvm/fuzz.test.ts (a few hundred runs) and by `npm run fuzz`
// (as many runs as fit in the given seconds).
import fc from 'fast-check';

import { BisyncError } from '../lib/device/errors';
import { lvmCrc } from '../lib/lvm/crc';
import { readLvm } from '../lib/lvm/read';
import type { LvmView } from '../lib/lvm/types';
import { type ImageLv, lvmId, mdaHeader, pvImage, type SparseImage, vgText } from './lvm-image';

const MiB = 1 << 20;
const DEVICE = 64 * MiB;
const PE_COUNT = 15;

/** A small valid PV: some LVs, several ring copies, one committed. */
export function seedImage(): { img: SparseImage; text: string } {
  const pvUuid = lvmId();
  const vgUuid = lvmId();
  const lvs: ImageLv[] = [
    { name: '5e1f6c2a-0000-4000', segments: [[0, 2], [6, 1]], tags: ['IU_img', 'MD_1'] },
    { name: 'b', segments: [[2, 3]] },
  ];
  const base = { vgName: 'vg0', vgUuid, pvUuid, extentSize: 4 * MiB, peStart: MiB, peCount: PE_COUNT, deviceSize: DEVICE, tags: ['RHAT_storage_domain', 'MDT_VERSION=5'] };
  const texts = [vgText({ ...base, seqno: 1, lvs: lvs.slice(0, 1) }), vgText({ ...base, seqno: 2, lvs })];
  return { img: pvImage({ deviceSize: DEVICE, texts, pvUuid, mda2Size: MiB }), text: texts[1] };
}

/** Throws unless `v` is internally consistent: extents inside the PE area, disjoint, and with the free space covering it exactly. */
export function checkView(v: LvmView): void {
  const lo = v.vg.peStart!;
  const hi = lo + v.vg.peCount * v.vg.extentSize;
  const all = [...v.vg.lvs.flatMap((lv) => lv.extents), ...v.unallocated].sort((a, b) => a[0] - b[0]);
  let at = lo;
  for (const [off, len] of all) {
    if (off !== at || len <= 0) throw new Error(`extents do not tile the PE area at ${off} (expected ${at})`);
    at = off + len;
  }
  if (at !== hi && !(all.length === 0 && lo === hi)) throw new Error(`extents end at ${at}, PE area at ${hi}`);
  for (const h of v.history) if (h.seqno >= v.committed.seqno) throw new Error(`history seqno ${h.seqno} not older than ${v.committed.seqno}`);
}

/** The property: null, a consistent view, or ERR_BAD_LVM. */
export async function readsOrRefuses(img: SparseImage): Promise<void> {
  let v: LvmView | null;
  try {
    v = await readLvm(img.read, img.size);
  } catch (e) {
    if (e instanceof BisyncError && e.code === 'ERR_BAD_LVM') return;
    throw e;
  }
  if (v) checkView(v);
}

/** Edits of a text: replace, insert or delete a run, or duplicate a slice. */
const textEdit = fc.tuple(fc.nat(), fc.nat({ max: 64 }), fc.string({ maxLength: 16, unit: fc.constantFrom(...'{}[]=",#\n 0123456789-abcpv_'.split('')) }), fc.constantFrom('replace', 'insert', 'delete', 'duplicate'));

function applyEdits(text: string, edits: Array<[number, number, string, string]>): string {
  let t = text;
  for (const [pos, len, s, op] of edits) {
    const p = pos % (t.length + 1);
    if (op === 'replace') t = t.slice(0, p) + s + t.slice(p + s.length);
    else if (op === 'insert') t = t.slice(0, p) + s + t.slice(p);
    else if (op === 'delete') t = t.slice(0, p) + t.slice(p + len);
    else t = t.slice(0, p) + t.slice(p, p + len) + t.slice(p);
  }
  return t;
}

/** Commits `text` as the mda0 copy with a matching checksum, so only the parser stands between it and the view. */
function commitText(img: SparseImage, text: string): void {
  const data = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.alloc(1)]);
  const offset = 512 * 40;
  img.write(4096 + offset, data.subarray(0, Math.min(data.length, MiB - 4096 - offset)));
  if (data.length > MiB - 4096 - offset) img.write(4096 + 512, data.subarray(MiB - 4096 - offset));
  img.write(4096, mdaHeader(4096, MiB - 4096, { offset, size: data.length, checksum: lvmCrc(data) }));
  // The second area is left as it was: the higher seqno of the two wins.
}

export const properties = {
  /** Random bytes over the label, the mda header or the committed text. */
  bytes: fc.asyncProperty(fc.constantFrom(512, 4096, 4096 + 512, 4096 + 1024), fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.nat({ max: 511 }), async (region, bytes, shift) => {
    const { img } = seedImage();
    const at = region + shift;
    const cur = await img.read(at, bytes.length);
    for (let i = 0; i < bytes.length; i++) cur[i] ^= bytes[i];
    img.write(at, cur);
    await readsOrRefuses(img);
  }),
  /** Header fields changed with their CRCs fixed, so the checks behind the CRC are reached. */
  headers: fc.asyncProperty(fc.constantFrom('label', 'mda'), fc.nat({ max: 480 }), fc.uint8Array({ minLength: 1, maxLength: 24 }), async (which, off, bytes) => {
    const { img } = seedImage();
    const base = which === 'label' ? 512 : 4096;
    const s = await img.read(base, 512);
    const from = which === 'label' ? 24 + (off % 460) : 20 + (off % 470);
    for (let i = 0; i < bytes.length && from + i < 512; i++) s[from + i] = bytes[i];
    if (which === 'label') s.writeUInt32LE(lvmCrc(s, 20, 512), 16);
    else s.writeUInt32LE(lvmCrc(s, 4, 512), 0);
    img.write(base, s);
    await readsOrRefuses(img);
  }),
  /** Edited VG texts committed with a valid checksum. */
  texts: fc.asyncProperty(fc.array(textEdit, { minLength: 1, maxLength: 6 }), async (edits) => {
    const { img, text } = seedImage();
    commitText(img, applyEdits(text.replace('seqno = 2', 'seqno = 9'), edits));
    await readsOrRefuses(img);
  }),
};

/** Runs every property for about `seconds`; exits 1 on a counterexample. */
async function main(seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  let runs = 0;
  while (Date.now() < until) {
    for (const [name, prop] of Object.entries(properties)) {
      const r = await fc.check(prop as fc.IAsyncProperty<unknown[]>, { numRuns: 500 });
      runs += r.numRuns;
      if (r.failed) {
        process.stderr.write(`fuzz-lvm: property ${name} failed:\n${fc.defaultReportMessage(r)}\n`);
        process.exit(1);
      }
    }
  }
  process.stdout.write(`fuzz-lvm: ${runs} runs of the LVM reader properties, no failure\n`);
}

if (require.main === module) void main(Number(process.argv[2] ?? 30));

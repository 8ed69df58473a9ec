// VG text (parsed) → VolumeGroup: this PV's entry, every LV with its segments,
// and the byte ranges of this PV each top-level LV owns. LV-to-LV areas
// (mirror legs, raid images, pvmove, snapshot COW, pool sub-LVs) are resolved
// down to physical extents and credited to the top-level LV they serve.
import { Extent, subtract } from '../device/extent';
import { badLvm, raw } from './errors';
import type { ConfigSection, ConfigValue } from './text';
import type { LogicalVolume, SegmentType, VolumeGroup } from './types';

const SECTOR = 512;
/** LV-to-LV references deeper than this are a cycle or garbage: LVM stacks a few levels at most. */
const MAX_DEPTH = 16;
/** Resolution steps allowed per VG: far above any real VG (one per segment and sub-LV). */
const MAX_STEPS = 1_000_000;

export interface VgFooter {
  description: string | null;
  creationHost: string | null;
  creationTime: number | null;
}

/** Typed access to one section, every refusal naming the field's path. */
class Fields {
  constructor(readonly sec: ConfigSection, readonly path: string, readonly what: string) {}

  private raw(key: string, required: boolean): { value: ConfigValue; offset: number } | undefined {
    const v = this.sec.values.get(key);
    if (!v && required) throw badLvm(`${this.what} ${this.path}.${key}`, this.sec.offset, raw('missing'), 'is required', 'text offset');
    return v;
  }

  fail(key: string, value: unknown, why: string): never {
    const at = this.sec.values.get(key)?.offset ?? this.sec.sections.get(key)?.offset ?? this.sec.offset;
    throw badLvm(`${this.what} ${this.path}.${key}`, at, value, why, 'text offset');
  }

  int(key: string, min?: number): number;
  int(key: string, min: number, required: false): number | null;
  int(key: string, min = 0, required = true): number | null {
    const v = this.raw(key, required);
    if (!v) return null;
    if (typeof v.value !== 'number' || !Number.isSafeInteger(v.value) || v.value < min) this.fail(key, v.value, `is not an integer >= ${min}`);
    return v.value;
  }

  str(key: string): string;
  str(key: string, required: false): string | null;
  str(key: string, required = true): string | null {
    const v = this.raw(key, required);
    if (!v) return null;
    if (typeof v.value !== 'string') this.fail(key, v.value, 'is not a string');
    return v.value;
  }

  strings(key: string): string[] {
    const v = this.raw(key, false);
    if (!v) return [];
    if (!Array.isArray(v.value) || v.value.some((x) => typeof x !== 'string')) this.fail(key, JSON.stringify(v.value), 'is not an array of strings');
    return v.value as string[];
  }

  array(key: string): Array<number | string> {
    const v = this.raw(key, true)!;
    if (!Array.isArray(v.value)) this.fail(key, v.value, 'is not an array');
    return v.value;
  }

  section(key: string, required = true): Fields | null {
    const s = this.sec.sections.get(key);
    if (!s) {
      if (required) throw badLvm(`${this.what} ${this.path}.${key}`, this.sec.offset, raw('missing'), 'is a required section', 'text offset');
      return null;
    }
    return new Fields(s, `${this.path}.${key}`, this.what);
  }

  children(): Fields[] {
    return [...this.sec.sections.values()].map((s) => new Fields(s, `${this.path}.${s.name}`, this.what));
  }
}

/** An area of a striped or mirror segment: a PV extent or an LV extent. */
interface Area {
  pv: string | null;
  lv: string | null;
  start: number;
}

interface Segment {
  start: number;
  count: number;
  type: SegmentType;
  /** striped/mirror areas; each stripe area holds count/stripes extents, each mirror leg all of them. */
  areas: Area[];
  stripes: number;
  /** Sub-LVs this segment owns as a whole (raid images, mirror log, pool data/metadata, cache origin). */
  whole: string[];
}

interface Lv {
  name: string;
  uuid: string;
  tags: string[];
  status: string[];
  segments: Segment[];
  extentCount: number;
  /** Snapshot COW LVs whose origin is this LV (set from the hidden snapshotN LVs). */
  cows: string[];
  /** The hidden snapshotN LV: internal, no extents, never listed. */
  snapshotOnly: boolean;
}

function segmentType(raw: string): SegmentType | null {
  // Reshape and similar flags ride on the type as `type+FLAG`.
  const t = raw.split('+')[0];
  if (t === 'striped') return 'striped';
  if (t === 'linear') return 'linear';
  if (t === 'mirror') return 'mirror';
  if (t.startsWith('raid')) return 'raid';
  if (t === 'snapshot') return 'snapshot';
  if (t === 'thin-pool' || t === 'thin' || t === 'cache' || t === 'cache-pool' || t === 'vdo' || t === 'vdo-pool' || t === 'error' || t === 'zero') return t;
  if (t === 'writecache' || t === 'integrity') return 'other';
  return null;
}

/** Keys naming sub-LVs a segment of each type owns as a whole (references to shared LVs such as thin_pool are not ownership). */
const WHOLE_KEYS: Partial<Record<string, string[]>> = {
  'thin-pool': ['metadata', 'pool'],
  'cache': ['cache_pool', 'origin'],
  'cache-pool': ['data', 'metadata'],
  'vdo-pool': ['data'],
  'writecache': ['origin', 'writecache'],
  'integrity': ['origin', 'meta_dev'],
  'mirror': ['mirror_log'],
};

function areas(f: Fields, key: string, pvNames: Set<string>): Area[] {
  const a = f.array(key);
  if (a.length === 0 || a.length % 2 !== 0) f.fail(key, JSON.stringify(a).slice(0, 80), 'is not a list of (name, extent) pairs');
  const out: Area[] = [];
  for (let i = 0; i < a.length; i += 2) {
    const name = a[i];
    const start = a[i + 1];
    if (typeof name !== 'string' || typeof start !== 'number' || !Number.isSafeInteger(start) || start < 0) {
      f.fail(key, JSON.stringify([name, start]), 'holds an area that is not a (name, extent) pair');
    }
    out.push(pvNames.has(name) ? { pv: name, lv: null, start } : { pv: null, lv: name, start });
  }
  return out;
}

function parseSegment(f: Fields, pvNames: Set<string>): Segment {
  const start = f.int('start_extent');
  const count = f.int('extent_count', 1);
  const rawType = f.str('type');
  const type = segmentType(rawType);
  if (!type) f.fail('type', rawType, 'is a segment type this reader does not know');
  const seg: Segment = { start, count, type, areas: [], stripes: 1, whole: [] };
  const base = rawType.split('+')[0];
  if (type === 'striped' || type === 'linear') {
    seg.stripes = f.int('stripe_count', 1);
    seg.areas = areas(f, 'stripes', pvNames);
    if (seg.areas.length !== seg.stripes) f.fail('stripes', seg.areas.length, `areas where stripe_count says ${seg.stripes}`);
    if (count % seg.stripes !== 0) f.fail('extent_count', count, `is not a multiple of stripe_count ${seg.stripes}`);
    if (seg.stripes > 1) f.int('stripe_size', 1);
    seg.type = seg.stripes === 1 ? 'linear' : 'striped';
  } else if (type === 'mirror') {
    seg.areas = areas(f, 'mirrors', pvNames);
    const n = f.int('mirror_count', 1);
    if (seg.areas.length !== n) f.fail('mirrors', seg.areas.length, `areas where mirror_count says ${n}`);
  } else if (type === 'raid') {
    const names = f.array('raids');
    if (names.some((n) => typeof n !== 'string')) f.fail('raids', JSON.stringify(names).slice(0, 80), 'is not a list of LV names');
    seg.whole.push(...(names as string[]).filter((n) => n !== ''));
  }
  for (const key of WHOLE_KEYS[base] ?? []) {
    const v = f.sec.values.get(key);
    if (v === undefined) continue;
    if (typeof v.value !== 'string') f.fail(key, v.value, 'is not an LV name');
    seg.whole.push(v.value);
  }
  return seg;
}

function parseLv(f: Fields, pvNames: Set<string>): Lv {
  const uuid = f.str('id');
  const status = f.strings('status');
  const tags = f.strings('tags');
  const n = f.int('segment_count', 0);
  const segments: Segment[] = [];
  let next = 0;
  for (let i = 1; i <= n; i++) {
    const sf = f.section(`segment${i}`)!;
    const seg = parseSegment(sf, pvNames);
    // Segments are contiguous in logical-extent space, in order.
    if (seg.start !== next) sf.fail('start_extent', seg.start, `does not follow the previous segment (expected ${next})`);
    next = seg.start + seg.count;
    if (!Number.isSafeInteger(next)) sf.fail('extent_count', seg.count, 'overflows');
    segments.push(seg);
  }
  return { name: f.sec.name, uuid, tags, status, segments, extentCount: next, cows: [], snapshotOnly: n > 0 && segments.every((s) => s.type === 'snapshot') };
}

/** The VG section is the first top-level section (the text's footer keys follow it). */
export function vgSection(root: ConfigSection, what: string): ConfigSection {
  const first = root.sections.values().next();
  if (first.done) throw badLvm(what, 0, raw('no section'), 'holds no volume group', 'text offset');
  return first.value;
}

export function parseFooter(root: ConfigSection): VgFooter {
  const s = (k: string): string | null => {
    const v = root.values.get(k)?.value;
    return typeof v === 'string' ? v : null;
  };
  const t = root.values.get('creation_time')?.value;
  return { description: s('description'), creationHost: s('creation_host'), creationTime: typeof t === 'number' ? t : null };
}

export interface BuiltVg {
  vg: VolumeGroup;
  /** This PV's extents no LV uses, bytes. */
  unallocated: Extent[];
}

interface ThisPv {
  name: string;
  peStart: number;
  peCount: number;
}

/** This PV, found by id (the `pvN` keys are per-text indices, `device` a stale hint); also every PV key. */
function findPv(f: Fields, pvUuid: string, extentSize: number, deviceSize: number): { me: ThisPv; pvNames: Set<string> } {
  const pvNames = new Set<string>();
  let found: ThisPv | null = null;
  for (const pv of f.section('physical_volumes')!.children()) {
    pvNames.add(pv.sec.name);
    if (pv.str('id') !== pvUuid) continue;
    const peStart = pv.int('pe_start') * SECTOR;
    const peCount = pv.int('pe_count');
    if (!Number.isSafeInteger(peStart + peCount * extentSize) || peStart + peCount * extentSize > deviceSize) {
      pv.fail('pe_count', peCount, `extents of ${extentSize} bytes from pe_start ${peStart} run past the end of the device (${deviceSize} bytes)`);
    }
    found = { name: pv.sec.name, peStart, peCount };
  }
  return { me: found ?? f.fail('physical_volumes', pvUuid, "is not among the VG's physical volumes (the label's PV uuid)"), pvNames };
}

/** Resolves every top-level LV down to [pe, count, index in `top`] pieces on this PV. */
function resolvePieces(lvs: Map<string, Lv>, top: Lv[], me: ThisPv, f: Fields): Array<[number, number, number]> {
  const pieces: Array<[number, number, number]> = [];
  let steps = 0;
  top.forEach((lv, idx) => {
    const seen = new Set<string>();
    const whole = (name: string, depth: number): void => {
      if (seen.has(name)) return;
      seen.add(name);
      const sub = lvs.get(name)!;
      resolve(sub, 0, sub.extentCount, depth);
    };
    const resolve = (cur: Lv, le: number, n: number, depth: number): void => {
      // Real stacks are a few levels and a few areas; a text that fans out without end is garbage.
      if (++steps > MAX_STEPS) f.fail(`logical_volumes.${cur.name}`, steps, 'LV-to-LV resolution steps (the references fan out without end)');
      if (depth > MAX_DEPTH) f.fail(`logical_volumes.${cur.name}`, depth, 'levels of LV-to-LV references (a cycle?)');
      if (le + n > cur.extentCount) f.fail(`logical_volumes.${cur.name}`, raw(`${le}+${n}`), `is referenced beyond its ${cur.extentCount} extents`);
      for (const seg of cur.segments) {
        const a = Math.max(le, seg.start) - seg.start;
        const b = Math.min(le + n, seg.start + seg.count) - seg.start;
        if (b <= a) continue;
        // A mirror leg holds every LE of the segment; a stripe area one LE in `stripes`.
        const [from, to] = seg.type === 'mirror' || seg.stripes === 1 ? [a, b] : [Math.floor(a / seg.stripes), Math.ceil(b / seg.stripes)];
        for (const area of seg.areas) {
          if (area.pv === me.name) {
            if (area.start + to > me.peCount) f.fail(`logical_volumes.${cur.name}`, raw(`${area.start + from}+${to - from}`), `uses extents beyond pe_count ${me.peCount} of ${me.name}`);
            pieces.push([area.start + from, to - from, idx]);
          } else if (area.lv !== null) resolve(lvs.get(area.lv)!, area.start + from, to - from, depth + 1);
        }
        for (const name of seg.whole) whole(name, depth + 1);
      }
      for (const cow of cur.cows) whole(cow, depth + 1);
    };
    resolve(lv, 0, lv.extentCount, 0);
  });
  return pieces;
}

/**
 * Per top-level LV its coalesced PE runs, and the PE runs in use. LVM never
 * gives one PE to two LVs (vg_validate): a text that does is damaged.
 */
function tile(pieces: Array<[number, number, number]>, top: Lv[], me: ThisPv, f: Fields): { perLv: Array<Array<[number, number]>>; used: Array<[number, number]> } {
  pieces.sort((x, y) => x[0] - y[0] || x[2] - y[2]);
  const perLv: Array<Array<[number, number]>> = top.map(() => []);
  const used: Array<[number, number]> = [];
  const extend = (runs: Array<[number, number]>, pe: number, count: number): void => {
    const last = runs[runs.length - 1];
    if (last && pe <= last[0] + last[1]) last[1] = Math.max(last[1], pe + count - last[0]);
    else runs.push([pe, count]);
  };
  // The piece reaching furthest so far: any overlap of two owners shows against it.
  let reach = 0;
  let reachOwner = -1;
  for (const [pe, count, idx] of pieces) {
    if (count === 0) continue;
    if (pe < reach && reachOwner !== idx) f.fail(`logical_volumes.${top[idx].name}`, pe, `is a PE of ${me.name} that ${top[reachOwner].name} uses too`);
    if (pe + count > reach) [reach, reachOwner] = [pe + count, idx];
    extend(used, pe, count);
    extend(perLv[idx], pe, count);
  }
  return { perLv, used };
}

/**
 * Builds the VolumeGroup as seen from the PV whose label uuid is `pvUuid`.
 * `deviceSize` bounds the extents. `what` names the text in errors.
 */
export function buildVg(root: ConfigSection, pvUuid: string, deviceSize: number, what: string): BuiltVg {
  const contents = root.values.get('contents')?.value;
  if (contents !== undefined && contents !== 'Text Format Volume Group') {
    throw badLvm(`${what} contents`, root.values.get('contents')!.offset, contents, 'is not "Text Format Volume Group"', 'text offset');
  }
  const version = root.values.get('version')?.value;
  if (version !== undefined && version !== 1) throw badLvm(`${what} version`, root.values.get('version')!.offset, version, 'is not 1', 'text offset');
  const vgSec = vgSection(root, what);
  const f = new Fields(vgSec, vgSec.name, what);
  const uuid = f.str('id');
  const seqno = f.int('seqno');
  const extentSize = f.int('extent_size', 1) * SECTOR;
  const tags = f.strings('tags');
  const { me, pvNames } = findPv(f, pvUuid, extentSize, deviceSize);

  const lvs = new Map<string, Lv>();
  for (const lf of f.section('logical_volumes', false)?.children() ?? []) lvs.set(lf.sec.name, parseLv(lf, pvNames));
  const owned = ownership(lvs, f);
  const top = [...lvs.values()].filter((lv) => !owned.has(lv.name) && !lv.snapshotOnly);
  const { perLv, used } = tile(resolvePieces(lvs, top, me, f), top, me, f);

  const bytes = ([pe, count]: [number, number]): Extent => [me.peStart + pe * extentSize, count * extentSize];
  const unallocated = [...subtract(me.peCount > 0 ? [[0, me.peCount]] : [], used)].map(([pe, n]) => bytes([pe, n]));

  const out: LogicalVolume[] = top.map((lv, i) => ({
    name: lv.name,
    uuid: lv.uuid,
    tags: lv.tags,
    status: lv.status,
    segmentTypes: lv.segments.map((s) => s.type),
    size: lv.extentCount * extentSize,
    extents: perLv[i].map(bytes),
    ovirt: null,
  }));
  const vg: VolumeGroup = {
    name: vgSec.name,
    uuid,
    seqno,
    extentSize,
    peStart: me.peStart,
    tags,
    pvName: me.name,
    peCount: me.peCount,
    lvs: out,
    ovirt: tags.includes('RHAT_storage_domain'),
  };
  return { vg, unallocated };
}

/** Names of LVs that serve another LV (so are not top-level); checks every reference resolves. */
function ownership(lvs: Map<string, Lv>, f: Fields): Set<string> {
  const owned = new Set<string>();
  const need = (from: Lv, name: string, key: string): Lv => {
    const lv = lvs.get(name);
    if (!lv) f.fail(`logical_volumes.${from.name}`, name, `names in ${key} an LV the VG does not hold`);
    if (lv === from) f.fail(`logical_volumes.${from.name}`, name, `refers to itself in ${key}`);
    return lv;
  };
  for (const lv of lvs.values()) {
    for (const seg of lv.segments) {
      for (const a of seg.areas) if (a.lv !== null) owned.add(need(lv, a.lv, 'an area').name);
      for (const name of seg.whole) owned.add(need(lv, name, 'a sub-LV').name);
    }
  }
  // The hidden snapshotN LV names origin and COW: the COW's blocks serve the origin.
  for (const lv of lvs.values()) {
    if (!lv.snapshotOnly) continue;
    const sec = lvSection(f, lv.name);
    const seg = sec.section('segment1')!;
    const origin = need(lv, seg.str('origin'), 'origin');
    const cow = need(lv, seg.str('cow_store'), 'cow_store');
    origin.cows.push(cow.name);
    owned.add(cow.name);
  }
  return owned;
}

function lvSection(f: Fields, name: string): Fields {
  return f.section('logical_volumes')!.section(name)!;
}

// What DRBD's kernel log says about a connect: the UUIDs each side brought to
// the handshake, what drbd_uuid_compare() decided and by which rule, and
// whether a resync began. /proc/drbd cannot tell "connected without a resync"
// from "connected after a quick resync"; these lines can.
import type { Verdict } from '../../lib/plan/classify';
import type { Guest } from './lab';

/** One side's UUIDs as a handshake logs them ("self C:B:H1:H2 bits:N flags:F"). */
export interface LoggedUuids {
  /** current, bitmap (8.4) or bitmaps, then history: hex as logged. */
  uuids: string[];
  /** Bits set in that side's bitmap at the handshake. */
  bits: number;
  flags: number;
}

export interface Handshake {
  self?: LoggedUuids;
  peer?: LoggedUuids;
  /** 8.4: what drbd_uuid_compare() returned ("0", "-2", "100"); 9: the strategy ("no-sync"). */
  result: string;
  /** 8.4: the rule number; 9: the rule name ("both-off"). */
  rule: string;
  line: string;
}

export interface ConnectLog {
  handshakes: Handshake[];
  /** Lines that show a resync starting: 8.4 "Began resync" or conn( to WFBitMapS, SyncSource and the like; 9 the same with repl(. */
  resyncs: string[];
  /** 8.4 "No resync, but N bits in bitmap!": equal UUIDs with leftover bits that DRBD drops. */
  leftoverBits: string[];
  /** "Split-Brain detected ..." */
  splitBrain: string[];
}

const SIDE = /\b(self|peer) ([0-9A-F]{16}(?::[0-9A-F]{16})*) bits:(\d+) flags:([0-9A-F]+)/i;
const COMPARE = /uuid_compare\(\)=(\S+) by rule[ =](\S+)/;
const RESYNC = /Began resync as|\b(?:conn|repl)\( \S+ -> (?:WFBitMap[ST]|Sync(?:Source|Target)|StartingSync[ST])\b/;

/** Parses kernel log lines (dmesg, with or without timestamps). */
export function parseConnectLog(lines: string[]): ConnectLog {
  const log: ConnectLog = { handshakes: [], resyncs: [], leftoverBits: [], splitBrain: [] };
  let self: LoggedUuids | undefined;
  let peer: LoggedUuids | undefined;
  for (const line of lines) {
    if (/drbd_sync_handshake:/.test(line)) {
      self = peer = undefined;
      continue;
    }
    const side = SIDE.exec(line);
    if (side) {
      const u = { uuids: side[2].toUpperCase().split(':'), bits: Number(side[3]), flags: parseInt(side[4], 16) };
      if (side[1] === 'self') self = u;
      else peer = u;
      continue;
    }
    const cmp = COMPARE.exec(line);
    if (cmp) {
      log.handshakes.push({ self, peer, result: cmp[1], rule: cmp[2], line });
      self = peer = undefined;
    } else if (RESYNC.test(line)) log.resyncs.push(line);
    else if (/No resync, but \d+ bits in bitmap/.test(line)) log.leftoverBits.push(line);
    else if (/Split-Brain detected/.test(line)) log.splitBrain.push(line);
  }
  return log;
}

/** The decision of an 8.4 handshake in the classifier's terms (lib/plan/classify.ts). */
export interface KernelDecision {
  verdict: Verdict;
  rule: number;
  fullSync: boolean;
}

/**
 * Maps drbd_uuid_compare()'s result to a verdict: 0 in sync, ±1 a bitmap
 * resync, ±2 a full sync (positive: this node is the source), 100 split brain
 * (equal bitmap UUIDs), -100 split brain over a common history UUID, -1000
 * unrelated. The rule is the kernel's as logged (for -1000 the last rule it
 * tried, 100).
 */
export function kernelDecision(h: Handshake): KernelDecision {
  const hg = Number(h.result);
  const rule = Number(h.rule);
  if (!Number.isInteger(hg) || !Number.isInteger(rule)) throw new Error(`not a DRBD 8.4 uuid_compare() line: ${h.line}`);
  if (hg === 0) return { verdict: 'in-sync', rule, fullSync: false };
  if (hg === 1 || hg === 2) return { verdict: 'local-ahead', rule, fullSync: hg === 2 };
  if (hg === -1 || hg === -2) return { verdict: 'peer-ahead', rule, fullSync: hg === -2 };
  if (hg === 100) return { verdict: 'split-brain', rule, fullSync: false };
  if (hg === -100) return { verdict: 'history-split-brain', rule, fullSync: false };
  if (hg === -1000) return { verdict: 'unrelated', rule, fullSync: false };
  throw new Error(`uuid_compare() result ${hg} (rule ${rule}) is not a decision the classifier models: ${h.line}`);
}

const MARK = 'drbd-lab: mark ';

/** Writes a unique line into the guest's kernel log; kernelLogSince() returns what follows it. */
export async function markKernelLog(g: Guest, tag: string): Promise<void> {
  await g.ok(`echo '${MARK}${tag}' > /dev/kmsg`);
}

/** The guest's kernel log after the newest mark with this tag (dmesg reads every level). */
export async function kernelLogSince(g: Guest, tag: string): Promise<string[]> {
  const lines = (await g.ok('dmesg')).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i].endsWith(`${MARK}${tag}`)) return lines.slice(i + 1);
  }
  throw new Error(`${g.name}: no '${MARK}${tag}' in the kernel log (dmesg has ${lines.length} lines)`);
}

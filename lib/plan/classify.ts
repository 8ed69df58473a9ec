// Which way the data flows, decided exactly as DRBD's drbd_uuid_compare()
// (drbd_receiver.c) decides it on connect. The rule numbers are DRBD 8.4's
// (`uuid_compare()=N by rule R` in its kernel log); DRBD 9 logs the same
// rules by name (`by rule=NAME`), given in drbd9Rule. Bit 0 of every UUID only
// records the role, so it is masked off before comparing, as DRBD does.
import { parseUuid } from '../drbd/uuid';

export type Verdict = 'in-sync' | 'local-ahead' | 'peer-ahead' | 'split-brain' | 'history-split-brain' | 'unrelated';

export interface GenerationUuids {
  current: bigint;
  bitmap: bigint;
  history: bigint[];
  /** MDF_CRASHED_PRIMARY: the node was Primary when it went down (rule 40 arbitrates by it). */
  crashedPrimary?: boolean;
  /** v09 meta-data (a DRBD 9 kernel): two DRBD 9 nodes skip the lost-sync-UUID fixups (rules 51, 71). */
  drbd9?: boolean;
}

export interface Classification {
  verdict: Verdict;
  /** DRBD 8.4's rule number that decided (the kernel's `by rule N`). */
  rule: number;
  /** The same rule as DRBD 9 names it (the kernel's `by rule=NAME`). */
  drbd9Rule: string;
  /** For local/peer-ahead: true when DRBD would need a full sync (no usable bitmap). */
  fullSync: boolean;
  reason: string;
}

const JUST_CREATED = 4n;
/** DRBD adds this to the old bitmap UUID when a sync source starts a resync (drbd_uuid_new_bm_offset). */
export const UUID_NEW_BM_OFFSET = 0x0001000000000000n;
const U64 = (1n << 64n) - 1n;
const mask = (v: bigint): bigint => v & ~1n;

/** DRBD 9's name of each DRBD 8.4 rule number. */
const DRBD9_RULE: Record<number, string> = {
  10: 'just-created-both',
  20: 'just-created-self',
  30: 'just-created-peer',
  34: 'sync-source-missed-finish',
  35: 'sync-target-peer-missed-finish',
  36: 'sync-source-peer-missed-finish',
  37: 'sync-target-missed-finish',
  40: 'both-off',
  50: 'bitmap-peer',
  51: 'sync-target-missed-start',
  60: 'history-peer',
  70: 'bitmap-self',
  71: 'sync-source-missed-start',
  80: 'history-self',
  90: 'bitmap-both',
  100: 'history-both',
};

export function classify(localUuids: GenerationUuids, peerUuids: GenerationUuids): Classification {
  const L = localUuids;
  const P = peerUuids;
  const self = mask(L.current);
  const peer = mask(P.current);
  const selfHist = L.history.map(mask);
  const peerHist = P.history.map(mask);
  // Two DRBD 9 nodes agree on protocol >= 110, where the 51/71 fixups are skipped.
  const fixups = !(L.drbd9 && P.drbd9);

  // Rules 10-30: fresh meta-data (create-md) on one or both sides.
  if (self === JUST_CREATED && peer === JUST_CREATED) return r('in-sync', 10, false, 'both nodes have just-created meta-data');
  if ((self === JUST_CREATED || self === 0n) && peer !== JUST_CREATED) return r('peer-ahead', 20, true, 'local meta-data is just created; the peer has data');
  if (self !== JUST_CREATED && (peer === JUST_CREATED || peer === 0n)) return r('local-ahead', 30, true, 'peer meta-data is just created; this node has data');

  if (self === peer) return equalCurrents(L, P);

  // Rule 50: the peer started a new generation from our current one; its bitmap has every change.
  if (self === mask(P.bitmap)) return r('peer-ahead', 50, false, "the peer's bitmap UUID is this node's current UUID: only the peer wrote");
  // Rule 51: our current is the peer's newest history UUID and its bitmap UUID
  // is that plus UUID_NEW_BM_OFFSET: the peer began a resync as source and the
  // P_SYNC_UUID never arrived. DRBD undoes the peer's rotation and uses the
  // bitmap. Without that condition rule 60 (full sync) decides.
  if (fixups && peerHist[0] === self && ((self + UUID_NEW_BM_OFFSET) & U64) === mask(P.bitmap)) {
    return r('peer-ahead', 51, false, "this node's current UUID is the peer's newest history UUID and the peer's bitmap UUID is its resync-start successor (a lost sync-UUID packet): only the peer wrote");
  }
  if (peerHist.includes(self)) return r('peer-ahead', 60, true, "this node's current UUID is in the peer's history: the peer is far ahead, DRBD does a full sync");
  if (mask(L.bitmap) === peer) return r('local-ahead', 70, false, "this node's bitmap UUID is the peer's current UUID: only this node wrote");
  // Rule 71: rule 51 seen from the other side.
  if (fixups && selfHist[0] === peer && ((peer + UUID_NEW_BM_OFFSET) & U64) === mask(L.bitmap)) {
    return r('local-ahead', 71, false, "the peer's current UUID is this node's newest history UUID and this node's bitmap UUID is its resync-start successor (a lost sync-UUID packet): only this node wrote");
  }
  if (selfHist.includes(peer)) return r('local-ahead', 80, true, "the peer's current UUID is in this node's history: this node is far ahead, DRBD does a full sync");
  // Rule 90: both started a new generation from the same one: each bitmap holds that side's writes.
  if (mask(L.bitmap) !== 0n && mask(L.bitmap) === mask(P.bitmap)) {
    return r('split-brain', 90, false, 'both nodes wrote since a common generation (equal bitmap UUIDs): each bitmap holds that side\'s changes');
  }
  // Rule 100 compares every history slot, zeros included (DRBD does not skip them).
  if (selfHist.some((u) => peerHist.includes(u))) {
    return r('history-split-brain', 100, false,
      'the nodes share only a history UUID, not a bitmap UUID: the split happened before the generation the bitmaps track, so no bitmap covers all changes; a full resync in one direction is the only safe repair');
  }
  // DRBD returns "unrelated data" (-1000) with the rule number still 100.
  return r('unrelated', 100, false, 'the nodes share no generation UUID: their data is unrelated');
}

/** Rules 34-40: equal current UUIDs. */
function equalCurrents(L: GenerationUuids, P: GenerationUuids): Classification {
  // 34-37 compare the bitmap UUIDs unmasked against 0, as DRBD does.
  if (P.bitmap === 0n && L.bitmap !== 0n) {
    // 34: we were sync source and missed "resync finished"; 36: the peer failed to write the sync UUID.
    const missed = mask(L.bitmap) === mask(P.history[0] ?? 0n) && mask(L.history[0] ?? 0n) === mask(P.history[1] ?? 0n);
    return r('local-ahead', missed ? 34 : 36, false, 'equal current UUIDs, and only this node still has a bitmap UUID: an interrupted resync with this node as source');
  }
  if (L.bitmap === 0n && P.bitmap !== 0n) {
    // 35: the peer missed "resync finished"; 37: we failed to write the sync UUID.
    const missed = mask(L.history[0] ?? 0n) === mask(P.bitmap) && mask(L.history[1] ?? 0n) === mask(P.history[0] ?? 0n);
    return r('peer-ahead', missed ? 35 : 37, false, 'equal current UUIDs, and only the peer still has a bitmap UUID: an interrupted resync with the peer as source');
  }
  // 40: a crashed primary's activity log goes to the other node; both crashed: a connection tie-break decides.
  const rct = (L.crashedPrimary ? 1 : 0) + (P.crashedPrimary ? 2 : 0);
  if (rct === 0) return r('in-sync', 40, false, 'both nodes have the same current UUID');
  if (rct === 1) return r('local-ahead', 40, false, 'equal current UUIDs and this node crashed as primary: DRBD resyncs its bitmap and activity log to the peer', 'crashed-primary');
  if (rct === 2) return r('peer-ahead', 40, false, 'equal current UUIDs and the peer crashed as primary: DRBD resyncs its bitmap and activity log to this node', 'crashed-primary');
  // Which node holds RESOLVE_CONFLICTS is decided when the connection is made: no plan can know the direction.
  return r('history-split-brain', 40, false,
    'both nodes crashed as primary with the same current UUID: DRBD picks the resync direction by a tie-break made at connect time, discarding the other node\'s last writes; decide by hand which node is the source', 'crashed-primary');
}

function r(verdict: Verdict, rule: number, fullSync: boolean, reason: string, drbd9Rule = DRBD9_RULE[rule]): Classification {
  return { verdict, rule, drbd9Rule, fullSync, reason };
}

export function uuidsOf(report: { format?: string; flags?: { crashedPrimary?: boolean }; uuids: { current: string; bitmap: string; history: string[] } }): GenerationUuids {
  return {
    current: parseUuid(report.uuids.current),
    bitmap: parseUuid(report.uuids.bitmap),
    history: report.uuids.history.map(parseUuid),
    crashedPrimary: report.flags?.crashedPrimary ?? false,
    drbd9: report.format === 'v09',
  };
}

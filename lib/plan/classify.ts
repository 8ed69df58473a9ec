// Which way the data flows, decided by DRBD's own generation-UUID rules
// (drbd_uuid_compare() of DRBD 8.4, the same order DRBD 9 names). Bit 0 of
// every UUID only records the role, so it is masked off before comparing.
import { parseUuid } from '../drbd/uuid';

export type Verdict = 'in-sync' | 'local-ahead' | 'peer-ahead' | 'split-brain' | 'history-split-brain' | 'unrelated';

export interface GenerationUuids {
  current: bigint;
  bitmap: bigint;
  history: bigint[];
}

export interface Classification {
  verdict: Verdict;
  /** DRBD's rule number (8.4 numbering) that decided. */
  rule: number;
  /** For local/peer-ahead: true when DRBD would need a full sync (no usable bitmap). */
  fullSync: boolean;
  reason: string;
}

const JUST_CREATED = 4n;
const mask = (v: bigint): bigint => v & ~1n;

export function classify(localUuids: GenerationUuids, peerUuids: GenerationUuids): Classification {
  const self = mask(localUuids.current);
  const peer = mask(peerUuids.current);
  const selfBm = mask(localUuids.bitmap);
  const peerBm = mask(peerUuids.bitmap);
  const selfHist = localUuids.history.map(mask).filter((u) => u !== 0n);
  const peerHist = peerUuids.history.map(mask).filter((u) => u !== 0n);
  const fresh = (u: bigint): boolean => u === JUST_CREATED || u === 0n;

  if (self === JUST_CREATED && peer === JUST_CREATED) return r('in-sync', 10, false, 'both nodes have just-created meta-data');
  if (fresh(self) && !fresh(peer)) return r('peer-ahead', 20, true, 'local meta-data is just created; the peer has data');
  if (fresh(peer) && !fresh(self)) return r('local-ahead', 30, true, 'peer meta-data is just created; this node has data');
  if (self === peer) return r('in-sync', 40, false, 'both nodes have the same current UUID');
  if (self === peerBm) return r('peer-ahead', 50, false, "the peer's bitmap UUID is this node's current UUID: only the peer wrote");
  if (peerHist.length && self === peerHist[0]) return r('peer-ahead', 51, false, "this node's current UUID is the peer's newest history UUID");
  if (peerHist.includes(self)) return r('peer-ahead', 60, true, "this node's current UUID is in the peer's history: the peer is far ahead");
  if (selfBm === peer) return r('local-ahead', 70, false, "this node's bitmap UUID is the peer's current UUID: only this node wrote");
  if (selfHist.length && selfHist[0] === peer) return r('local-ahead', 71, false, "the peer's current UUID is this node's newest history UUID");
  if (selfHist.includes(peer)) return r('local-ahead', 80, true, "the peer's current UUID is in this node's history: this node is far ahead");
  if (selfBm !== 0n && selfBm === peerBm) {
    return r('split-brain', 90, false, 'both nodes wrote since a common generation (equal bitmap UUIDs): each bitmap holds that side\'s changes');
  }
  if (selfHist.some((u) => peerHist.includes(u))) {
    return r('history-split-brain', 100, false,
      'the nodes share only a history UUID, not a bitmap UUID: the split happened before the generation the bitmaps track, so no bitmap covers all changes; a full resync in one direction is the only safe repair');
  }
  return r('unrelated', -1000, false, 'the nodes share no generation UUID: their data is unrelated');
}

function r(verdict: Verdict, rule: number, fullSync: boolean, reason: string): Classification {
  return { verdict, rule, fullSync, reason };
}

export function uuidsOf(report: { uuids: { current: string; bitmap: string; history: string[] } }): GenerationUuids {
  return {
    current: parseUuid(report.uuids.current),
    bitmap: parseUuid(report.uuids.bitmap),
    history: report.uuids.history.map(parseUuid),
  };
}

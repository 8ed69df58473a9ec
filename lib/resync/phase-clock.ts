// How long each phase of a merge took, from its progress events: the report
// says what moved, this says where the time went (e.g. the copy alone, apart
// from plan and verify, to set beside a plain copy of the same bytes).
import type { MergeProgress } from './merge';

export class PhaseClock {
  private readonly spans = new Map<string, { first: number; last: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Bound, so it can be handed to `merge.on('progress', ...)` as is. */
  readonly note = (p: Pick<MergeProgress, 'phase'>): void => {
    const t = this.now();
    const span = this.spans.get(p.phase);
    if (span) span.last = t;
    else this.spans.set(p.phase, { first: t, last: t });
  };

  /** Milliseconds from each phase's first progress event to its last, in the order the phases began. */
  ms(): Record<string, number> {
    return Object.fromEntries([...this.spans].map(([phase, s]) => [phase, s.last - s.first]));
  }
}

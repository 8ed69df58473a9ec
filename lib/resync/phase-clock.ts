// How long each phase of a merge took, from its progress events: the report
// says what moved, this says where the time went (e.g. the copy alone, apart
// from plan and verify, to set beside a plain copy of the same bytes).
import type { MergeProgress } from './merge';

export class PhaseClock {
  private readonly spans = new Map<string, { first: number; last: number }>();
  private lastEvent: number;

  constructor(private readonly now: () => number = Date.now) {
    this.lastEvent = now();
  }

  /** Bound, so it can be handed to `merge.on('progress', ...)` as is. */
  readonly note = (p: Pick<MergeProgress, 'phase' | 'doneBytes'>): void => {
    const t = this.now();
    const span = this.spans.get(p.phase);
    if (span) span.last = t;
    // A phase whose first event already reports progress (verify's come per finished batch) began before
    // it: at the event before, of another phase, or when the clock started.
    else this.spans.set(p.phase, { first: p.doneBytes > 0 ? this.lastEvent : t, last: t });
    this.lastEvent = t;
  };

  /** Milliseconds each phase took (see note()), in the order the phases began. */
  ms(): Record<string, number> {
    return Object.fromEntries([...this.spans].map(([phase, s]) => [phase, s.last - s.first]));
  }
}

// The merge's per-phase times as `merge --json` reports them in phaseMs.
import { strict as assert } from 'node:assert';
import { PhaseClock } from '../../lib/resync/phase-clock';

describe('PhaseClock', () => {
  it('times each phase from its first progress event to its last, interleaved lanes apart', () => {
    let t = 0;
    const clock = new PhaseClock(() => t);
    const at = (ms: number, phase: 'plan' | 'toLocal' | 'toPeer' | 'verify', doneBytes: number): void => {
      t = ms;
      clock.note({ phase, doneBytes });
    };
    at(100, 'plan', 0);
    at(250, 'plan', 10);
    at(300, 'toLocal', 0);
    at(310, 'toPeer', 0);
    at(400, 'toPeer', 20);
    at(900, 'toLocal', 30);
    at(1000, 'verify', 50); // one batch: its only event comes at its end
    assert.deepEqual(clock.ms(), { plan: 150, toLocal: 600, toPeer: 90, verify: 100 });
    assert.deepEqual(Object.keys(clock.ms()), ['plan', 'toLocal', 'toPeer', 'verify'], 'in the order the phases began');
  });

  it('a phase whose first event reports progress began at the event before it, or when the clock started', () => {
    let t = 50;
    const clock = new PhaseClock(() => t);
    t = 400;
    clock.note({ phase: 'plan', doneBytes: 4096 });
    assert.deepEqual(clock.ms(), { plan: 350 });
  });
});

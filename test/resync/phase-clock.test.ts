// The merge's per-phase times as `merge --json` reports them in phaseMs.
import { strict as assert } from 'node:assert';
import { PhaseClock } from '../../lib/resync/phase-clock';

describe('PhaseClock', () => {
  it('times each phase from its first progress event to its last, interleaved lanes apart', () => {
    let t = 0;
    const clock = new PhaseClock(() => t);
    const at = (ms: number, phase: 'plan' | 'toLocal' | 'toPeer' | 'verify'): void => {
      t = ms;
      clock.note({ phase });
    };
    at(100, 'plan');
    at(250, 'plan');
    at(300, 'toLocal');
    at(310, 'toPeer');
    at(900, 'toLocal');
    at(400, 'toPeer');
    at(1000, 'verify');
    assert.deepEqual(clock.ms(), { plan: 150, toLocal: 600, toPeer: 90, verify: 0 });
    assert.deepEqual(Object.keys(clock.ms()), ['plan', 'toLocal', 'toPeer', 'verify'], 'in the order the phases began');
  });
});

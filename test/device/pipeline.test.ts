// pipelined(): bounded concurrency, results in submission order, errors and
// aborts surface only after work already started has settled.
import * as assert from 'node:assert/strict';
import { pipelined } from '../../lib/device/pipeline';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('pipelined', () => {
  it('keeps at most `concurrency` runs in flight and yields in order', async () => {
    let inFlight = 0;
    let peak = 0;
    const out: number[] = [];
    for await (const [i, r] of pipelined([0, 1, 2, 3, 4, 5, 6, 7], async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep((8 - i) * 3); // later inputs finish first
      inFlight--;
      return i * 10;
    }, { concurrency: 3 })) {
      assert.equal(r, i * 10);
      out.push(i);
    }
    assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(peak, 3);
  });

  it('a slow head does not leave the other slots idle', async () => {
    let releaseHead: () => void = () => undefined;
    const headGate = new Promise<void>((r) => (releaseHead = r));
    const started: number[] = [];
    const out: number[] = [];
    const gen = pipelined([0, 1, 2, 3, 4, 5, 6, 7], async (i) => {
      started.push(i);
      if (i === 0) await headGate;
      else await sleep(1);
      return i;
    }, { concurrency: 2 });
    const first = gen.next();
    await sleep(50);
    // With two slots, 1 finishes and 2 takes its place, and so on up to the window of 4.
    assert.deepEqual(started, [0, 1, 2, 3]);
    releaseHead();
    out.push((await first).value![0]);
    for await (const [i] of gen) out.push(i);
    assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('a failure surfaces in order, after the runs already started have settled', async () => {
    const settled: number[] = [];
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const [i] of pipelined([0, 1, 2, 3], async (i) => {
          await sleep(i === 1 ? 1 : 20);
          settled.push(i);
          if (i === 1) throw new Error('batch 1 failed');
          return i;
        }, { concurrency: 4 })) seen.push(i);
      })(),
      /batch 1 failed/,
    );
    assert.deepEqual(seen, [0]);
    assert.deepEqual([...settled].sort(), [0, 1, 2, 3], 'every started run settled before the error reached the caller');
  });

  it('stops starting work when the signal aborts', async () => {
    const ac = new AbortController();
    const started: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const [i] of pipelined([0, 1, 2, 3, 4, 5], async (i) => {
          started.push(i);
          await sleep(1);
          return i;
        }, { concurrency: 1, signal: ac.signal })) {
          if (i === 1) ac.abort();
        }
      })(),
      { name: 'AbortError' },
    );
    assert.ok(started.length <= 3, `started ${started.join(',')} after the abort`);
  });

  it('accepts async iterables as input', async () => {
    async function* gen(): AsyncGenerator<number> {
      for (let i = 0; i < 5; i++) yield i;
    }
    const out: number[] = [];
    for await (const [, r] of pipelined(gen(), async (i) => i + 1, { concurrency: 2 })) out.push(r);
    assert.deepEqual(out, [1, 2, 3, 4, 5]);
  });
});

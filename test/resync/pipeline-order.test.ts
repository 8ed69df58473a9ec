// The merge journal records "everything below offset X is done" per lane from
// the order transfer batches are reported in; that is only sound if a batch
// is reported after every earlier one finished, however they complete.
import { strict as assert } from 'node:assert';
import { pipelined } from '../../lib/device/pipeline';

describe('pipelined results for the journal', () => {
  it('reports batches in submission order when later ones finish first, and only once they finished', async () => {
    const finished = new Set<number>();
    const delays = [60, 5, 5, 40, 1, 1, 30, 1, 1, 1];
    const run = (i: number): Promise<number> =>
      new Promise((r) => setTimeout(() => {
        finished.add(i);
        r(i);
      }, delays[i]));
    const seen: number[] = [];
    for await (const [i] of pipelined(delays.keys(), run, { concurrency: 3 })) {
      for (let k = 0; k <= i; k++) assert.ok(finished.has(k), `batch ${k} finished before ${i} was reported`);
      seen.push(i);
    }
    assert.deepEqual(seen, [...delays.keys()]);
  });

  it('a failed batch is reported before any later batch, even when those succeeded', async () => {
    const seen: number[] = [];
    const run = (i: number): Promise<number> =>
      new Promise((resolve, reject) => setTimeout(() => (i === 1 ? reject(new Error('batch 1 failed')) : resolve(i)), i === 1 ? 30 : 1));
    await assert.rejects((async () => {
      for await (const [i] of pipelined([0, 1, 2, 3], run, { concurrency: 4 })) seen.push(i);
    })(), /batch 1 failed/);
    assert.deepEqual(seen, [0]);
  });
});

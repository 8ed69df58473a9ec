// Keeps a bounded number of native batches in flight and yields their results
// in submission order, so the event loop stays free and the disks stay busy.

export interface PipelineOptions {
  /** Batches in flight at once (the native work runs on the libuv pool). */
  concurrency?: number;
  signal?: AbortSignal;
}

interface Entry<I, O> {
  input: I;
  result: Promise<O>;
  settled: boolean;
}

export async function* pipelined<I, O>(inputs: Iterable<I> | AsyncIterable<I>, run: (input: I) => Promise<O>, opts: PipelineOptions = {}): AsyncGenerator<[I, O]> {
  const limit = Math.max(1, opts.concurrency ?? 4);
  // Finished results may wait behind a slow head; the window bounds how many.
  const window = 2 * limit;
  const queue: Array<Entry<I, O>> = [];
  const it = (Symbol.asyncIterator in inputs ? inputs[Symbol.asyncIterator]() : (inputs as Iterable<I>)[Symbol.iterator]()) as AsyncIterator<I> | Iterator<I>;
  let exhausted = false;
  let running = 0;
  let settledOne: () => void = () => undefined;
  let anySettled = new Promise<void>((r) => (settledOne = r));

  const fill = async (): Promise<void> => {
    while (!exhausted && running < limit && queue.length < window) {
      opts.signal?.throwIfAborted();
      const r = await it.next();
      if (r.done) {
        exhausted = true;
        break;
      }
      const entry: Entry<I, O> = { input: r.value, result: run(r.value), settled: false };
      running++;
      const done = (): void => {
        entry.settled = true;
        running--;
        settledOne();
      };
      entry.result.then(done, done); // a rejection is observed when the entry is dequeued
      queue.push(entry);
    }
  };

  try {
    await fill();
    while (queue.length) {
      const head = queue[0];
      // Refill as soon as any batch finishes, not only the head: one slow
      // batch must not leave the other workers idle.
      while (!head.settled) {
        await Promise.race([head.result.then(noop, noop), anySettled]);
        anySettled = new Promise<void>((r) => (settledOne = r));
        await fill();
      }
      queue.shift();
      const out = await head.result;
      await fill();
      yield [head.input, out];
    }
  } finally {
    // Let work already started finish before the caller closes descriptors.
    await Promise.allSettled(queue.map((q) => q.result));
  }
}

const noop = (): void => undefined;

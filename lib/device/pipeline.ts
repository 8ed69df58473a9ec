// Keeps a bounded number of native batches in flight and yields their results
// in submission order, so the event loop stays free and the disks stay busy.

export interface PipelineOptions {
  /** Batches in flight at once (the native work runs on the libuv pool). */
  concurrency?: number;
  signal?: AbortSignal;
}

export async function* pipelined<I, O>(inputs: Iterable<I> | AsyncIterable<I>, run: (input: I) => Promise<O>, opts: PipelineOptions = {}): AsyncGenerator<[I, O]> {
  const limit = Math.max(1, opts.concurrency ?? 4);
  const queue: Array<{ input: I; result: Promise<O> }> = [];
  const it = (Symbol.asyncIterator in inputs ? inputs[Symbol.asyncIterator]() : (inputs as Iterable<I>)[Symbol.iterator]()) as AsyncIterator<I> | Iterator<I>;
  let exhausted = false;
  const fill = async (): Promise<void> => {
    while (!exhausted && queue.length < limit) {
      opts.signal?.throwIfAborted();
      const r = await it.next();
      if (r.done) {
        exhausted = true;
        break;
      }
      const result = run(r.value);
      result.catch(() => undefined); // observed when dequeued; avoid an unhandled rejection meanwhile
      queue.push({ input: r.value, result });
    }
  };
  try {
    await fill();
    while (queue.length) {
      const head = queue.shift()!;
      const out = await head.result;
      await fill();
      yield [head.input, out];
    }
  } finally {
    // Let work already started finish before the caller closes descriptors.
    await Promise.allSettled(queue.map((q) => q.result));
  }
}

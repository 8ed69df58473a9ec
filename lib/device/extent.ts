// Byte extents [offset, length] and their algebra. Every operation takes and
// yields sorted iterables lazily, so a list of millions of blocks is never
// built as an array per block.

/** A byte range: [offset, length], both non-negative safe integers. */
export type Extent = readonly [offset: number, length: number];

export const end = (e: Extent): number => e[0] + e[1];

export function totalBytes(extents: Iterable<Extent>): number {
  let n = 0;
  for (const e of extents) n += e[1];
  return n;
}

/** Throws a RangeError naming the value unless e is a valid extent. */
export function checkExtent(e: Extent, what = 'extent'): void {
  const [off, len] = e;
  if (!Number.isSafeInteger(off) || off < 0) throw new RangeError(`${what} offset must be a non-negative integer, got ${off}`);
  if (!Number.isSafeInteger(len) || len <= 0) throw new RangeError(`${what} length must be a positive integer, got ${len}`);
  if (!Number.isSafeInteger(off + len)) throw new RangeError(`${what} [${off}, ${len}] ends beyond 2^53`);
}

/** Merges adjacent and overlapping extents of an offset-sorted stream; drops empty ones. */
export function* coalesce(extents: Iterable<Extent>): Generator<Extent> {
  const c = new Cursor(extents);
  for (; c.cur; c.next()) yield c.cur;
}

/** Sorts and coalesces an unsorted array (for input from users and files). */
export function normalize(extents: Iterable<Extent>): Extent[] {
  return [...coalesce([...extents].sort((a, b) => a[0] - b[0]))];
}

/**
 * Peekable reader of a sorted stream that coalesces as it goes. The algebra below runs every
 * extent of a merge through it (tens of thousands for a scattered split brain), so it reads
 * arrays by index and takes no iterator, destructuring or generator frame per extent: a
 * union of unions of 32 768 extents went from about 80 ms to a few.
 */
class Cursor {
  cur: Extent | undefined;
  private readonly arr: readonly Extent[] | null;
  private readonly it: Iterator<Extent> | null;
  private i = 0;
  private ahead: Extent | undefined; // the first raw extent past cur, already read

  constructor(src: Iterable<Extent>) {
    this.arr = Array.isArray(src) ? (src as readonly Extent[]) : null;
    this.it = this.arr ? null : src[Symbol.iterator]();
    this.next();
  }

  private raw(): Extent | undefined {
    if (this.arr) return this.i < this.arr.length ? this.arr[this.i++] : undefined;
    const r = this.it!.next();
    return r.done ? undefined : r.value;
  }

  next(): void {
    let first = this.ahead ?? this.raw();
    this.ahead = undefined;
    while (first && first[1] <= 0) first = this.raw();
    if (!first) {
      this.cur = undefined;
      return;
    }
    const start = first[0];
    if (this.cur && start < this.cur[0]) throw unsorted(start, this.cur[0]);
    let stop = start + first[1];
    for (let e = this.raw(); e; e = this.raw()) {
      if (e[1] <= 0) continue;
      if (e[0] < start) throw unsorted(e[0], start);
      if (e[0] > stop) {
        this.ahead = e;
        break;
      }
      stop = Math.max(stop, e[0] + e[1]);
    }
    this.cur = stop - start === first[1] ? first : [start, stop - start];
  }
}

function unsorted(off: number, after: number): RangeError {
  return new RangeError(`extents must be sorted by offset: ${off} after ${after}`);
}

/** The bytes in both a and b (both sorted). */
export function* intersect(a: Iterable<Extent>, b: Iterable<Extent>): Generator<Extent> {
  const x = new Cursor(a);
  const y = new Cursor(b);
  while (x.cur && y.cur) {
    const lo = Math.max(x.cur[0], y.cur[0]);
    const hi = Math.min(end(x.cur), end(y.cur));
    if (lo < hi) yield [lo, hi - lo];
    if (end(x.cur) < end(y.cur)) x.next();
    else y.next();
  }
}

/** The bytes in a or b (both sorted). */
export function* union(a: Iterable<Extent>, b: Iterable<Extent>): Generator<Extent> {
  const x = new Cursor(a);
  const y = new Cursor(b);
  let open: [number, number] | undefined; // [start, stop) being grown
  while (x.cur || y.cur) {
    const fromX = !y.cur || (x.cur !== undefined && x.cur[0] <= y.cur[0]);
    const e = fromX ? x.cur! : y.cur!;
    if (fromX) x.next();
    else y.next();
    if (open && e[0] <= open[1]) {
      open[1] = Math.max(open[1], e[0] + e[1]);
      continue;
    }
    if (open) yield [open[0], open[1] - open[0]];
    open = [e[0], e[0] + e[1]];
  }
  if (open) yield [open[0], open[1] - open[0]];
}

/** The bytes in a but not in b (both sorted). */
export function* subtract(a: Iterable<Extent>, b: Iterable<Extent>): Generator<Extent> {
  const x = new Cursor(a);
  const y = new Cursor(b);
  for (; x.cur; x.next()) {
    let pos = x.cur[0];
    const stop = end(x.cur);
    while (y.cur && end(y.cur) <= pos) y.next();
    if (!y.cur || y.cur[0] >= stop) {
      yield x.cur; // untouched by b: no new tuple
      continue;
    }
    while (y.cur && y.cur[0] < stop) {
      if (y.cur[0] > pos) yield [pos, y.cur[0] - pos];
      pos = Math.max(pos, end(y.cur));
      if (end(y.cur) > stop) break;
      y.next();
    }
    if (pos < stop) yield [pos, stop - pos];
  }
}

/** Widens each extent to whole blocks, clipped at limit (a device size), and coalesces. */
export function* alignToBlocks(extents: Iterable<Extent>, blockSize: number, limit = Number.MAX_SAFE_INTEGER): Generator<Extent> {
  yield* coalesce(
    (function* () {
      for (const [off, len] of extents) {
        const lo = Math.floor(off / blockSize) * blockSize;
        const hi = Math.min(Math.ceil((off + len) / blockSize) * blockSize, limit);
        if (hi > lo) yield [lo, hi - lo] as Extent;
      }
    })(),
  );
}

/** Cuts extents into pieces of at most maxBytes, each starting on a block boundary relative to the extent. */
export function* splitAt(extents: Iterable<Extent>, maxBytes: number): Generator<Extent> {
  for (const [off, len] of extents) {
    for (let done = 0; done < len; done += maxBytes) yield [off + done, Math.min(maxBytes, len - done)];
  }
}

/** Yields one extent per block of the given size (the last may be shorter). */
export function* blocks(extents: Iterable<Extent>, blockSize: number): Generator<Extent> {
  yield* splitAt(extents, blockSize);
}

/** Groups a stream into batches of at most maxBytes (extents split as needed). */
export function* batches(extents: Iterable<Extent>, maxBytes: number): Generator<Extent[]> {
  let batch: Extent[] = [];
  let bytes = 0;
  for (const e of splitAt(extents, maxBytes)) {
    if (bytes + e[1] > maxBytes && batch.length) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(e);
    bytes += e[1];
  }
  if (batch.length) yield batch;
}

/** Flat Float64Array form used by the native layer. */
export function toFlat(extents: readonly Extent[]): Float64Array {
  const a = new Float64Array(extents.length * 2);
  extents.forEach(([o, l], i) => {
    a[2 * i] = o;
    a[2 * i + 1] = l;
  });
  return a;
}

export function* fromFlat(a: Float64Array): Generator<Extent> {
  for (let i = 0; i < a.length; i += 2) yield [a[i], a[i + 1]];
}

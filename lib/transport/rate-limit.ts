// A token bucket on payload bytes (GCRA form: one "theoretical arrival time").
// A frame larger than the burst simply waits longer; the long-run rate holds.
import { setTimeout as sleep } from 'node:timers/promises';

export function checkRate(rate: unknown, what = 'rate limit'): number {
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 1024) {
    throw new RangeError(`${what} must be a number of bytes per second, at least 1024, got ${String(rate)}`);
  }
  return rate;
}

export class TokenBucket {
  private tat = 0;
  private readonly burstMs: number;

  /** @param burstBytes what may go out at once after a quiet spell (default: 50 ms worth). */
  constructor(readonly bytesPerSecond: number, burstBytes = bytesPerSecond / 20) {
    checkRate(bytesPerSecond);
    this.burstMs = (burstBytes * 1000) / bytesPerSecond;
  }

  /** Waits until n more bytes fit the rate, then counts them as sent. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    this.tat = Math.max(this.tat, now) + (n * 1000) / this.bytesPerSecond;
    const wait = this.tat - now - this.burstMs;
    if (wait > 0) await sleep(wait, undefined, { signal });
  }
}

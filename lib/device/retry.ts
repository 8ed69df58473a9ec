// Tries an operation again while it fails in a way time may mend (a device DRBD still
// holds, a port nothing listens on yet), up to a deadline. Any other error fails at once.

export interface RetryOptions {
  /** The errors worth another try. */
  retryable: (e: unknown) => boolean;
  /** How long to keep trying, in ms (0: one attempt). */
  forMs: number;
  /** Called before each pause, with the error and the number of the attempt it ended (1, 2, ...). */
  onRetry?: (e: unknown, attempt: number) => void;
  /** Checked before every attempt. */
  signal?: AbortSignal;
}

/** Pause between attempts: short next to a person's reaction, long next to a syscall. */
const PAUSE_MS = 100;

export async function retryWhile<T>(attempt: () => Promise<T>, o: RetryOptions): Promise<T> {
  const until = Date.now() + o.forMs;
  for (let n = 1; ; n++) {
    o.signal?.throwIfAborted();
    try {
      return await attempt();
    } catch (e) {
      if (!o.retryable(e) || Date.now() >= until) throw e;
      o.onRetry?.(e, n);
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    }
  }
}

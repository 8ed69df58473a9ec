// Preloaded (node -r) into the `merge` CLI by the merge benchmark: notes when
// each phase of the merge first and last reported progress, and prints the
// times (seconds since the process started) as one stderr line at exit, so
// the benchmark can say which phase costs what. Not part of the library.
import { EventEmitter } from 'node:events';

const seen: Record<string, { first: number; last: number }> = {};
const emit = EventEmitter.prototype.emit;
EventEmitter.prototype.emit = function (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
  const phase = event === 'progress' ? (args[0] as { phase?: unknown } | undefined)?.phase : undefined;
  if (typeof phase === 'string') {
    const t = process.uptime();
    seen[phase] ??= { first: t, last: t };
    seen[phase].last = t;
  }
  return emit.call(this, event, ...args);
};
process.on('exit', () => process.stderr.write(`bisync-phases ${JSON.stringify({ ...seen, exit: { first: process.uptime(), last: process.uptime() } })}\n`));

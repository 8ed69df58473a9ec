// Crash points for the resume tests: when DRBD_BISYNC_FAILPOINT names a point,
// the process kills itself there with SIGKILL, as a power cut would. Off
// unless that variable is set. A counted point ('after-journaled-batches')
// fires once its count reaches DRBD_BISYNC_FAILPOINT_COUNT (default 1).
export type FailpointName = 'after-archive' | 'mid-transfer' | 'before-finalize' | 'between-finalize-writes' | 'after-journaled-batches';

export function failpoint(name: FailpointName, count?: number): void {
  if (process.env.DRBD_BISYNC_FAILPOINT !== name) return;
  if (count === undefined || count >= Number(process.env.DRBD_BISYNC_FAILPOINT_COUNT ?? 1)) process.kill(process.pid, 'SIGKILL');
}

// Crash points for the resume tests: when DRBD_BISYNC_FAILPOINT names a point,
// the process kills itself there with SIGKILL, as a power cut would. Off
// unless that variable is set.
export type FailpointName = 'after-archive' | 'mid-transfer' | 'before-finalize' | 'between-finalize-writes';

export function failpoint(name: FailpointName): void {
  if (process.env.DRBD_BISYNC_FAILPOINT === name) process.kill(process.pid, 'SIGKILL');
}

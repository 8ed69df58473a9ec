// Crash points inside DrbdMetadata.update() for the crash-safety tests: when
// DRBD_BISYNC_MD_FAILPOINT names a point, the process kills itself there with
// SIGKILL, as a power cut would. Off unless that variable is set.
export type MdFailpoint = 'after-set-bits' | 'after-al-fold' | 'after-al-init' | 'after-superblock' | 'mid-clear';

export function mdFailpoint(name: MdFailpoint): void {
  if (process.env.DRBD_BISYNC_MD_FAILPOINT === name) process.kill(process.pid, 'SIGKILL');
}

// Split brain is not a DRBD state: the kernel logs it and drops the
// connection (StandAlone). This reads the kernel log to tell that StandAlone
// apart from an administrative disconnect.
import * as fs from 'node:fs';

/** Kernel log messages (newest last) from /dev/kmsg; undefined when it cannot be read (not root, dmesg_restrict). */
export function readKernelLog(file = '/dev/kmsg'): string[] | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const lines: string[] = [];
  const buf = Buffer.alloc(16384);
  try {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // records were overwritten while reading: skip ahead
        if (code === 'EAGAIN') break; // the end
        throw e;
      }
      if (n <= 0) break;
      // "<prio>,<seq>,<usec>,<flags>;<message>\n[ continuation]"
      const rec = buf.toString('utf8', 0, n);
      const semi = rec.indexOf(';');
      lines.push((semi >= 0 ? rec.slice(semi + 1) : rec).split('\n')[0]);
    }
  } finally {
    fs.closeSync(fd);
  }
  return lines;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * True when the newest "Split-Brain detected but unresolved" message about
 * this resource (by name or minor) is newer than its newest reconnect attempt
 * ("conn( StandAlone -> ...").
 */
export function splitBrainInLog(lines: string[], resource: string, minors: number[]): boolean {
  const about = new RegExp(`(\\bdrbd ${escape(resource)}(/\\d+)?[: ])|(\\bdrbd(${minors.join('|') || 'x'}): )|(\\bminor-(${minors.join('|') || 'x'})\\b)`);
  let lastSplit = -1;
  let lastReconnect = -1;
  lines.forEach((l, i) => {
    if (!about.test(l)) return;
    if (/Split-Brain detected but unresolved|helper command: \S+ split-brain/.test(l)) lastSplit = i;
    else if (/conn\( StandAlone -> /.test(l)) lastReconnect = i;
  });
  return lastSplit > lastReconnect;
}

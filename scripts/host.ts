// What this host offers: root, and commands on PATH. Shared by the tests,
// the benchmarks and the lab.
import { spawnSync } from 'node:child_process';

export const isRoot = process.getuid?.() === 0;

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

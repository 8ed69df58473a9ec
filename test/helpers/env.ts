// What the machine offers the tests: root, losetup, drbdmeta. A test that
// needs what is missing marks itself pending with the reason.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { hasCommand, isRoot } from '../../scripts/host';

export { hasCommand, isRoot };

/** Marks the test or suite pending unless every requirement holds. Returns true when it may run. */
/** Anything else named is a command that must be on PATH (e.g. 'mkfs.ext4'). */
export type Need = 'root' | 'losetup' | 'drbdmeta' | 'ip' | 'qemu' | (string & Record<never, never>);

export function requires(ctx: Mocha.Context, ...needs: Need[]): boolean {
  for (const need of needs) {
    const ok =
      need === 'root' ? isRoot
        : need === 'qemu' ? hasCommand('qemu-system-x86_64')
        : hasCommand(need);
    if (!ok) {
      (ctx.currentTest ?? ctx.test)!.title += ` (pending: needs ${need === 'root' ? 'root' : `${need} installed`})`;
      ctx.skip();
    }
  }
  return true;
}

/** A temporary folder removed after the run; RAM-backed when /dev/shm exists. */
export function tmpDir(prefix = 'bisync-test-'): string {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return fs.mkdtempSync(path.join(base, prefix));
}

/** A loop device over a new sparse file of the given size; detach() removes both. */
export interface Loop {
  device: string;
  file: string;
  detach(): void;
}

export function makeLoop(size: number, opts: { sectorSize?: 512 | 4096; directIo?: boolean; dir?: string } = {}): Loop {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? tmpDir();
  const file = path.join(dir, `loop-${process.pid}-${Math.random().toString(36).slice(2)}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  const args = ['--find', '--show'];
  if (opts.sectorSize) args.push('--sector-size', String(opts.sectorSize));
  if (opts.directIo) args.push('--direct-io=on');
  const device = execFileSync('losetup', [...args, file], { encoding: 'utf8' }).trim();
  return {
    device,
    file,
    detach() {
      spawnSync('losetup', ['-d', device]);
      fs.rmSync(ownDir ? dir : file, { recursive: true, force: true });
    },
  };
}

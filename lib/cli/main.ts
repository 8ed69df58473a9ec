#!/usr/bin/env node
// The drbd-bisync command: a thin shell over the library. Each concern
// registers its commands from its own module.
import { Command } from 'commander';
import { registerDeviceCommands } from './commands/device';
import { registerInspectCommand } from './commands/inspect';
import { registerResyncCommands } from './commands/resync';
import { registerStatusCommands } from './commands/status';

export function buildProgram(): Command {
  const program = new Command('drbd-bisync')
    .description('Repair a DRBD split brain by a bidirectional resync, and fast block diff/copy')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride((err) => {
      // Usage errors exit 2 like other errors; --help and --version exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  registerDeviceCommands(program);
  registerInspectCommand(program);
  registerResyncCommands(program);
  registerStatusCommands(program);
  return program;
}

/** From lib/cli (ts-node) or dist/lib/cli (built): the nearest package.json above. */
function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      return require(rel).version;
    } catch {
      // not at this depth
    }
  }
  return 'unknown';
}

if (require.main === module) {
  buildProgram().parseAsync(process.argv).catch((e: unknown) => {
    process.stderr.write(`drbd-bisync: ${(e as Error).message}\n`);
    process.exitCode = 2;
  });
}

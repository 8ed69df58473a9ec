#!/usr/bin/env node
// The drbd-bisync command: a thin shell over the library. Each concern
// registers its commands from its own module.
import { Command } from 'commander';
import { registerDeviceCommands } from './commands/device';

export function buildProgram(): Command {
  const program = new Command('drbd-bisync')
    .description('Repair a DRBD split brain by a bidirectional resync, and fast block diff/copy')
    .version(require('../../../package.json').version)
    .showHelpAfterError()
    .exitOverride((err) => {
      // Usage errors exit 2 like other errors; --help and --version exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  registerDeviceCommands(program);
  return program;
}

if (require.main === module) {
  buildProgram().parseAsync(process.argv).catch((e: unknown) => {
    process.stderr.write(`drbd-bisync: ${(e as Error).message}\n`);
    process.exitCode = 2;
  });
}

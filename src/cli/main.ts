#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { isVigilError } from '../errors.ts';
import { registerCommands } from './commands.ts';
import { EXIT_FAILURE, EXIT_USAGE, formatCliError } from './output.ts';

const program = new Command('vigil')
  .description('Vigil: zero trust access — identity-aware proxy, policy as code, device trust, audit')
  .option('--debug', 'print stack traces on errors')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version are "errors" to commander; they already printed what they had to.
    if (
      error.code === 'commander.helpDisplayed' ||
      error.code === 'commander.version' ||
      error.exitCode === 0
    ) {
      process.exitCode = 0;
    } else {
      process.exitCode = EXIT_USAGE;
    }
  } else {
    const debug = program.opts<{ debug?: boolean }>().debug === true;
    process.stderr.write(`${formatCliError(error, debug)}\n`);
    process.exitCode = isVigilError(error, 'ERR_CLI_USAGE') ? EXIT_USAGE : EXIT_FAILURE;
  }
}

import type { Command } from 'commander';

/** Every `vigil` subcommand; each lives in its own file under src/cli/. */
export function registerCommands(program: Command): void {
  void program;
}

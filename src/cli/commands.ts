import type { Command } from 'commander';
import { registerPolicyCommand } from './policy.ts';

/** Every `vigil` subcommand; each lives in its own file under src/cli/. */
export function registerCommands(program: Command): void {
  registerPolicyCommand(program);
}

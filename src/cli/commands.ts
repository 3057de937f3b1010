import type { Command } from 'commander';
import { registerAgentCommand } from './agent.ts';
import { registerAuditCommand } from './audit.ts';
import { registerCaCommand } from './ca.ts';
import { registerConfigCommand } from './config.ts';
import { registerDeviceCommand } from './device.ts';
import { registerPolicyCommand } from './policy.ts';
import { registerServerCommand } from './server.ts';
import { registerSessionCommand } from './session.ts';
import { registerUpCommand } from './up.ts';

/** Every `vigil` subcommand; each lives in its own file under src/cli/. */
export function registerCommands(program: Command): void {
  registerUpCommand(program);
  registerServerCommand(program);
  registerConfigCommand(program);
  registerPolicyCommand(program);
  registerCaCommand(program);
  registerAuditCommand(program);
  registerSessionCommand(program);
  registerDeviceCommand(program);
  registerAgentCommand(program);
}

import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/index.ts';
import { EXIT_FAILURE, type OutputOptions, printObject } from './output.ts';

/** `vigil config check`: validates a config file the way the server would load it. */
export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description('inspect and validate vigil.yaml');
  config
    .command('check')
    .description('validate a config file; every problem is printed with file:line and field')
    .option('-c, --config <path>', 'config file', process.env.VIGIL_CONFIG ?? 'vigil.yaml')
    .option('--json', 'print JSON')
    .action((options: { config: string } & OutputOptions) => {
      try {
        const { config: loaded, path } = loadConfig(options.config);
        printObject(
          { valid: true, path, routes: loaded.routes.length, policy_files: loaded.policy_files.length },
          options,
        );
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ valid: false, problems: error.problems }, null, 2)}\n`);
        } else {
          for (const line of error.message.split('\n')) process.stderr.write(`${line}\n`);
        }
        process.exitCode = EXIT_FAILURE;
      }
    });
}

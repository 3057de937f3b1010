import type { Command } from 'commander';
import { VigilError } from '../errors.ts';
import { DEFAULT_DEMO_PORT, startDemo } from '../server/demo.ts';
import { createLogger } from '../telemetry/index.ts';

/** `vigil up`: the demo on one command. */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run the demo: dev IdP, two apps behind the proxy, embedded SQLite in ./.vigil-data')
    .option('--port <port>', 'proxy port; admin uses port+1, the dev IdP port+2', String(DEFAULT_DEMO_PORT))
    .option(
      '--data-dir <path>',
      `where the demo keeps its database and keys (default: ./.vigil-data on port ${DEFAULT_DEMO_PORT}, ./.vigil-data/PORT on another)`,
    )
    .option('--json', 'print one JSON object once ready (for scripts)')
    .action(async (options: { port: string; dataDir?: string; json?: boolean }) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 1 || port > 65_533) {
        throw new VigilError(
          'ERR_CLI_USAGE',
          `--port must be a port number from 1 to 65533 (got "${options.port}")`,
        );
      }
      // Logs go to stderr so that --json leaves stdout to the one JSON object.
      const logger = createLogger({ level: options.json ? 'warn' : 'info', destination: process.stderr });
      const demo = await startDemo({
        port,
        ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
        logger,
      });
      const summary = {
        proxy: demo.proxy,
        idp: demo.idp,
        admin: demo.admin,
        apps: demo.apps,
        users: demo.users,
      };
      if (options.json) {
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      } else {
        const lines = [
          '',
          'Vigil demo is running. Open an app and log in:',
          ...demo.apps.map((app) => `  ${app.title.padEnd(24)} ${app.url}`),
          '',
          'Demo users (password "demo"):',
          ...demo.users.map((user) => `  ${user.name.padEnd(8)} ${user.groups.join(', ')}`),
          '',
          `alice reaches the engineering app; bob is denied with a page that says why.`,
          `Dev IdP ${demo.idp}   admin API ${demo.admin}   Ctrl-C stops.`,
          `Data in ${demo.dataDir}; edit its demo-policy.yaml and the demo follows.`,
          '',
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          demo.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}

import type { Command } from 'commander';
import { loadConfig } from '../config/index.ts';
import { startServer } from '../server/index.ts';

/** `vigil server --config vigil.yaml`: runs the proxy and admin listeners until SIGTERM. */
export function registerServerCommand(program: Command): void {
  program
    .command('server')
    .description('run the Vigil server (proxy and admin listeners) from a config file')
    .option('-c, --config <path>', 'config file', process.env.VIGIL_CONFIG ?? 'vigil.yaml')
    .action(async (options: { config: string }) => {
      const server = await startServer(loadConfig(options.config), { watchConfig: true });
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          server.logger.info({ signal }, 'shutting down');
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          server.close().then(resolve, resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}

import type { Command } from 'commander';
import { defaultDeviceDir, runAgentOnce } from '../device/index.ts';
import { isVigilError, VigilError } from '../errors.ts';
import { parseDuration } from '../internal/duration.ts';
import { type OutputOptions, printObject } from './output.ts';

interface AgentFlags extends OutputOptions {
  dir: string;
  interval: string;
  once?: boolean;
  hostRoot: string;
  edrProcess: string[];
}

/** Posture reports failing in a row before the agent stops: the device is revoked or gone. */
const FATAL_CODES = new Set(['ERR_DEVICE_REVOKED', 'ERR_DEVICE_NOT_ENROLLED']);

async function agent(flags: AgentFlags): Promise<void> {
  const intervalMs = parseDuration(flags.interval);
  if (intervalMs === undefined || intervalMs < 10_000)
    throw new VigilError(
      'ERR_CLI_USAGE',
      `--interval ${flags.interval}: use a duration of at least 10s, like 5m`,
    );
  const round = async () => {
    const run = await runAgentOnce({
      dir: flags.dir,
      hostRoot: flags.hostRoot,
      edrProcessNames: flags.edrProcess,
    });
    const checks = Object.fromEntries(
      (run.posture.checks ?? []).map((check) => [
        check.field,
        `${check.value ?? 'unknown'} (${check.evidence})`,
      ]),
    );
    printObject(
      { reported_at: new Date().toISOString(), state: run.state, renewed: run.renewed, ...checks },
      flags,
    );
  };
  if (flags.once) {
    await round();
    return;
  }
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  while (!stopped) {
    try {
      await round();
    } catch (error) {
      if (isVigilError(error) && FATAL_CODES.has(error.code)) throw error;
      // A server or network hiccup: report it and try again next round.
      process.stderr.write(`vigil agent: ${(error as Error).message}\n`);
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, intervalMs).unref();
    });
  }
}

/** Registers `vigil agent`: posture reports signed with the device key, every --interval. */
export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description(
      'report this device’s posture (OS, disk encryption, firewall, screen lock, EDR), signed, every --interval',
    )
    .option('--dir <path>', 'where vigil device enroll put the key and certificate', defaultDeviceDir())
    .option('--interval <duration>', 'time between reports', '5m')
    .option('--once', 'report once and exit')
    .option('--host-root <path>', 'read host files under this root (agent in a container)', '/')
    .option(
      '--edr-process <name>',
      'process name of the EDR agent (repeat for several)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--json', 'print JSON')
    .action((flags: AgentFlags) => agent(flags));
}

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { CLI } from './cli.ts';

export interface DemoSummary {
  proxy: string;
  idp: string;
  admin: string;
  apps: { name: string; title: string; url: string }[];
  users: { name: string; password: string; groups: string[] }[];
}

/** Starts `vigil up --json` and reads its one JSON line. */
export async function startUp(
  port: number,
  dataDir: string,
): Promise<{ child: ChildProcess; summary: DemoSummary }> {
  const child = spawn(
    process.execPath,
    [CLI, 'up', '--json', '--port', String(port), '--data-dir', dataDir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const [line] = (await Promise.race([
      once(createInterface({ input: child.stdout! }), 'line'),
      once(child, 'exit').then(() => {
        throw new Error(`vigil up exited: ${stderr}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`vigil up not ready in 30 s: ${stderr}`)), 30_000);
      }),
    ])) as [string];
    return { child, summary: JSON.parse(line) as DemoSummary };
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM, then the exit code. */
export async function stopUp(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  return code;
}

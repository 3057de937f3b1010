import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { CLI } from './cli.ts';

export interface DemoSummary {
  proxy: string;
  idp: string;
  admin: string;
  apps: { name: string; title: string; url: string }[];
  users: { name: string; password: string; groups: string[] }[];
}

type Started = { child: ChildProcess; summary: DemoSummary };

/** A port P with P, P+1 and P+2 free right now (vigil up listens on all three). */
export async function freePortTriple(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await Promise.all([0, 1, 2].map((offset) => isFree(port + offset)))).every(Boolean)) return port;
  }
  throw new Error('no three consecutive free ports found');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Starts `vigil up --json` and reads its one JSON line. Without a port it picks three
 * free ones, and tries again if another test took one of them in the meantime.
 */
export async function startUp(port: number | undefined, dataDir: string): Promise<Started> {
  if (port !== undefined) return startUpOn(port, dataDir);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startUpOn(await freePortTriple(), dataDir);
    } catch (error) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String(error))) throw error;
    }
  }
}

/**
 * `vigil up --json --port PORT`, with `--data-dir` when given (else the demo picks its
 * own, under `cwd`); resolves with the summary it prints once ready.
 */
export async function startUpOn(port: number, dataDir: string | undefined, cwd?: string): Promise<Started> {
  const child = spawn(
    process.execPath,
    [CLI, 'up', '--json', '--port', String(port), ...(dataDir === undefined ? [] : ['--data-dir', dataDir])],
    { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd === undefined ? {} : { cwd }) },
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

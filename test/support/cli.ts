import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname;

/** Runs `vigil ARGS` to completion; never throws on a non-zero exit. */
export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...options.env }, cwd: options.cwd, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export interface SpawnedServer {
  child: ChildProcess;
  proxyUrl: string;
  adminUrl: string;
  /** Every JSON log line seen so far. */
  logs: Record<string, unknown>[];
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** Starts `vigil server` and waits for its "listening" log line. */
/** `cli`: another checkout's `src/cli/main.ts`, for benchmarks comparing two revisions. */
export async function spawnServer(
  configPath: string,
  env: NodeJS.ProcessEnv = {},
  cli = CLI,
): Promise<SpawnedServer> {
  const child = spawn(process.execPath, [cli, 'server', '--config', configPath], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 20 s: ${stderr}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'vigil server listening') {
          clearTimeout(timer);
          resolve(entry);
        }
      } catch {
        // Not a log line; ignore.
      }
    });
  });
  const ready = await listening;
  return {
    child,
    proxyUrl: String(ready.proxy),
    adminUrl: String(ready.admin),
    logs,
    async stop(signal = 'SIGTERM') {
      const started = Date.now();
      if (child.exitCode !== null) return { code: child.exitCode, ms: 0 };
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return { code, ms: Date.now() - started };
    },
  };
}

/**
 * A `vigil server` config in `dir` for end-to-end tests through the proxy: the proxy on
 * `port`, the dev IdP, a policy `eng` that lets the engineering group in, and `routes`
 * (YAML list items, indented two spaces). Returns the config's path.
 */
export function writeProxyConfig(dir: string, port: number, routes: string): string {
  writeFileSync(
    join(dir, 'policy.yaml'),
    'policies:\n  - name: eng\n    rules:\n      - name: engineers\n        allow: { groups: { any: [engineering] } }\n',
  );
  const config = join(dir, 'vigil.yaml');
  writeFileSync(
    config,
    `server:
  proxy_listen: 127.0.0.1:${port}
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
log: { format: json }
dev_idp: { listen: 127.0.0.1:0 }
policy_files: [policy.yaml]
routes:
${routes}`,
  );
  return config;
}

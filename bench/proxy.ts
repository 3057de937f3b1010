// bench/proxy.ts — req/s and latency through (a) a bare Node pass-through, (b) Vigil with
// session + policy + assertion + audit on every request, (c) nginx proxy_pass; same
// upstream, same wrk load, same run. Prints one JSON line last.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { spawnServer } from '../test/support/cli.ts';
import { Browser, freePort } from '../test/support/cookie-jar.ts';

const DURATION = process.env.BENCH_DURATION ?? '8s';
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const CHILDREN = new URL('./_proxy-children.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-proxy-'));
chmodSync(dir, 0o755);
const children: ChildProcess[] = [];
const log = (text: string) => process.stderr.write(`${text}\n`);

function cleanup(): void {
  for (const child of children) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);

async function child(args: string[]): Promise<number> {
  const process_ = spawn(process.execPath, [CHILDREN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(process_);
  const [line] = await new Promise<string[]>((resolve) =>
    createInterface({ input: process_.stdout! }).once('line', (text) => resolve([text])),
  );
  return Number(line);
}

interface WrkResult {
  rps: number;
  p50_us: number;
  p99_us: number;
}

function toMicros(value: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!match) return Number.NaN;
  const amount = Number(match[1]);
  return match[2] === 'us' ? amount : match[2] === 'ms' ? amount * 1000 : amount * 1_000_000;
}

function wrk(url: string, headers: Record<string, string>): WrkResult {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}`, '--latency'];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  const output = execFileSync('wrk', [...args, url], { encoding: 'utf8', maxBuffer: 10 * 1024 * 1024 });
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (non2xx)
    throw new Error(`${url}: ${non2xx[1]} non-2xx responses; the benchmark would be measuring errors`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? 0),
    p50_us: toMicros(/\s50%\s+(\S+)/.exec(output)?.[1] ?? ''),
    p99_us: toMicros(/\s99%\s+(\S+)/.exec(output)?.[1] ?? ''),
  };
}

async function startNginx(upstreamPort: number): Promise<number> {
  const port = await freePort();
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    mkdirSync(join(dir, sub), { recursive: true });
  const config = join(dir, 'nginx.conf');
  writeFileSync(
    config,
    `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const nginx = spawn('/usr/sbin/nginx', ['-p', dir, '-c', config], { stdio: 'ignore' });
  children.push(nginx);
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return port;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error('nginx did not start');
}

async function startVigil(upstreamPort: number): Promise<{ url: string; cookie: string }> {
  const proxyPort = await freePort();
  writeFileSync(
    join(dir, 'policy.yaml'),
    `policies:
  - name: bench
    rules:
      - name: contractors-never-admin
        deny:
          and: [{ groups: { any: [contractors] } }, { path: { prefix: /admin } }]
      - name: engineers
        allow:
          groups: { any: [engineering] }
`,
  );
  const configPath = join(dir, 'vigil.yaml');
  writeFileSync(
    configPath,
    `server:
  proxy_listen: 127.0.0.1:${proxyPort}
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
log: { level: info, format: json }
dev_idp: { listen: 127.0.0.1:0 }
limits: { per_identity: 0, per_source: 0, lockout_denials: 0 }
policy_files: [policy.yaml]
routes:
  - name: bench
    from: http://127.0.0.1:${proxyPort}
    to: http://127.0.0.1:${upstreamPort}
    policy: bench
`,
  );
  // BENCH_PROFILE=DIR writes a CPU profile of the Vigil process there.
  const profile = process.env.BENCH_PROFILE;
  const server = await spawnServer(
    configPath,
    profile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profile}` } : {},
  );
  children.push(server.child);
  server.child.stdout?.resume();
  const browser = new Browser();
  const landed = await browser.login(`${server.proxyUrl}/`, 'alice');
  if (landed.status !== 200)
    throw new Error(`login for the benchmark failed: ${landed.status} ${landed.body.slice(0, 200)}`);
  const cookie = browser.jar.header(new URL(server.proxyUrl));
  if (!cookie) throw new Error('no session cookie after login');
  return { url: server.proxyUrl, cookie };
}

const upstreamPort = await child(['upstream']);
const passthroughPort = await child(['passthrough', `http://127.0.0.1:${upstreamPort}`]);
const nginxPort = await startNginx(upstreamPort);
const vigil = await startVigil(upstreamPort);
log(`upstream :${upstreamPort}  pass-through :${passthroughPort}  nginx :${nginxPort}  vigil ${vigil.url}`);

// Warm every path once so that JIT and pools are not measured cold.
for (const [name, run] of [
  ['pass-through', () => wrk(`http://127.0.0.1:${passthroughPort}/`, {})],
  ['vigil', () => wrk(`${vigil.url}/`, { cookie: vigil.cookie })],
  ['nginx', () => wrk(`http://127.0.0.1:${nginxPort}/`, {})],
] as const) {
  log(`warming ${name}`);
  run();
}
const results: Record<string, WrkResult> = {};
for (const [name, run] of [
  ['node-passthrough', () => wrk(`http://127.0.0.1:${passthroughPort}/`, {})],
  ['vigil', () => wrk(`${vigil.url}/`, { cookie: vigil.cookie })],
  ['nginx', () => wrk(`http://127.0.0.1:${nginxPort}/`, {})],
] as const) {
  log(`measuring ${name} (${DURATION}, ${CONNECTIONS} connections)`);
  results[name] = run();
  log(`  ${JSON.stringify(results[name])}`);
}

const ours = results.vigil as WrkResult;
const passthrough = results['node-passthrough'] as WrkResult;
const nginx = results.nginx as WrkResult;
const round = (value: number, digits = 3) => Number(value.toFixed(digits));
process.stdout.write(
  `${JSON.stringify({
    bench: 'proxy',
    metric: 'requests/s',
    value: round(ours.rps, 0),
    p50_us: ours.p50_us,
    p99_us: ours.p99_us,
    peers: { 'node-passthrough': round(passthrough.rps, 0), nginx: round(nginx.rps, 0) },
    peer_latency_us: {
      'node-passthrough': { p50: passthrough.p50_us, p99: passthrough.p99_us },
      nginx: { p50: nginx.p50_us, p99: nginx.p99_us },
    },
    ratios: { 'node-passthrough': round(ours.rps / passthrough.rps), nginx: round(ours.rps / nginx.rps) },
    added_p99_us_vs_passthrough: round(ours.p99_us - passthrough.p99_us, 0),
    load: { tool: 'wrk', threads: 1, connections: CONNECTIONS, duration: DURATION },
    per_request:
      'session cookie unseal + in-memory session, compiled policy, cached ES256 assertion, audit enqueue (SQLite)',
  })}\n`,
);
process.exit(0);

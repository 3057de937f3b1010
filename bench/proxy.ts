// bench/proxy.ts — req/s and latency through (a) a bare Node pass-through, (b) Vigil with
// session + policy + assertion + audit on every request, (c) nginx proxy_pass; same
// upstream, same wrk load, same run; and, with wrk only, (a) sending Vigil's headers on,
// which splits Vigil's cost over (a) into what its output costs and what it does. Then
// the latency each adds at half of Vigil's peak: an open-loop client (bench/_open-loop.ts)
// sends at a fixed rate and times each request from when it was due, so stalls are not
// hidden as wrk's closed loop hides them.
// Targets take turns in short slices (BENCH_SLICES) so that a machine whose speed drifts
// slows them alike. Prints one JSON line last.
// BENCH_COMPARE=DIR adds Vigil run from another checkout (`git worktree add DIR REV`,
// `npm ci` there) as a fifth target, in the same turns: on a machine whose speed drifts by
// a third within minutes, two revisions compare only side by side.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { spawnServer } from '../test/support/cli.ts';
import { Browser, freePort } from '../test/support/cookie-jar.ts';

const DURATION = process.env.BENCH_DURATION ?? '8s';
const DURATION_SECONDS = (() => {
  const match = /^(\d+)(s|m)?$/.exec(DURATION);
  if (!match) throw new Error(`BENCH_DURATION must be like 8s or 1m, not ${DURATION}`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
})();
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
/**
 * Seconds of fixed-rate load per target, after a second of warm-up that is not counted;
 * 0 skips the fixed-rate runs (a quicker comparison of throughput alone).
 */
const OPEN_SECONDS = Number(process.env.BENCH_OPEN_SECONDS ?? 10);
/**
 * Each target's measuring time (wrk's and the fixed-rate client's) is cut in this many
 * slices, the targets taking turns (a, b, c, a, b, c, …): a machine whose speed drifts
 * (another tenant's job) then slows every target alike, and Vigil's added latency is
 * read per pair of neighbouring slices. Each fixed-rate slice starts with a warm-up
 * second that is not counted.
 */
const SLICES = Math.max(1, Number(process.env.BENCH_SLICES ?? 4));
const WRK_SLICE_SECONDS = Math.max(1, Math.round(DURATION_SECONDS / SLICES));
const OPEN_WARMUP_MS = 1000;
const COMPARE_DIR = process.env.BENCH_COMPARE;
if (COMPARE_DIR !== undefined && !existsSync(join(COMPARE_DIR, 'src/cli/main.ts')))
  throw new Error(`BENCH_COMPARE=${COMPARE_DIR}: no src/cli/main.ts there; give the root of a checkout`);
/**
 * BENCH_PIN=1: each proxy alone on CPU 0, the load generator and the upstream on CPU 1
 * (taskset), as if they had machines of their own: the ratios then compare what the
 * proxies themselves cost, not how they share two cores with the apparatus.
 */
const PIN = process.env.BENCH_PIN === '1';
if (PIN && availableParallelism() < 2)
  throw new Error('BENCH_PIN=1 needs two CPUs (one for the proxies, one for the rest)');
const PROXY_CPU = '0';
const APPARATUS_CPU = '1';
const CHILDREN = new URL('./_proxy-children.ts', import.meta.url).pathname;
const OPEN_LOOP = new URL('./_open-loop.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-proxy-'));
chmodSync(dir, 0o755);
const children: ChildProcess[] = [];
const log = (text: string) => process.stderr.write(`${text}\n`);

function cleanup(): void {
  for (const child of children) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);

async function child(args: string[], execArgv: string[] = []): Promise<{ port: number; pid: number }> {
  const process_ = spawn(process.execPath, [...execArgv, CHILDREN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(process_);
  const [line] = await new Promise<string[]>((resolve) =>
    createInterface({ input: process_.stdout! }).once('line', (text) => resolve([text])),
  );
  return { port: Number(line), pid: process_.pid ?? 0 };
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) of a /proc stat file, in µs; NaN where /proc is not there. */
function cpuMicros(statPath: string): number {
  try {
    const stat = readFileSync(statPath, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** CPU µs of each thread of `pid` by thread name (Node: MainThread, WorkerThread, V8Worker, libuv-worker). */
function cpuByThread(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const name = readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim();
      byName.set(name, (byName.get(name) ?? 0) + cpuMicros(`/proc/${pid}/task/${task}/stat`));
    }
  } catch {
    // not Linux, or gone
  }
  return byName;
}

/** CPU µs of this process's waited-for children (wrk, the open-loop client): cutime + cstime. */
function childrenCpuMicros(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[13]) + Number(fields[14])) * 1_000_000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

interface CpuCost {
  /** CPU µs the proxy's processes (every thread) spent per request sent. */
  cpu_us_per_request: number;
  /**
   * What every process on the machine spent per request: the proxy, the upstream it
   * loads, and the load generator. On a 2-core machine they share the cores, so a
   * proxy that makes the upstream or the client work harder slows itself down too.
   */
  box_cpu_us_per_request?: { proxy: number; upstream: number; load: number };
  /** The same by thread, for Vigil: event loop, audit writer thread, the rest (GC helpers, libuv pool). */
  cpu_us_by_thread?: Record<string, number>;
}

/** Runs `work` and returns its result with what the processes `pids` spent on it. */
function withCpu<T extends { sent: number }>(
  pids: readonly number[],
  work: () => T,
  byThread = false,
): T & CpuCost {
  const sum = () => pids.reduce((total, pid) => total + cpuMicros(`/proc/${pid}/stat`), 0);
  const threads = () => (byThread ? cpuByThread(pids[0] ?? 0) : new Map<string, number>());
  const upstreamCpu = () => cpuMicros(`/proc/${upstream.pid}/stat`);
  const before = sum();
  const upstreamBefore = upstreamCpu();
  const loadBefore = childrenCpuMicros();
  const threadsBefore = threads();
  const result = work();
  const perRequest = (micros: number) => Math.round(micros / result.sent);
  const proxyCpu = perRequest(sum() - before);
  const cost: CpuCost = {
    cpu_us_per_request: proxyCpu,
    box_cpu_us_per_request: {
      proxy: proxyCpu,
      upstream: perRequest(upstreamCpu() - upstreamBefore),
      load: perRequest(childrenCpuMicros() - loadBefore),
    },
  };
  if (byThread) {
    const split: Record<string, number> = { MainThread: 0, WorkerThread: 0, other: 0 };
    for (const [name, micros] of threads()) {
      const key = name === 'MainThread' || name === 'WorkerThread' ? name : 'other';
      split[key] = (split[key] ?? 0) + micros - (threadsBefore.get(name) ?? 0);
    }
    cost.cpu_us_by_thread = Object.fromEntries(
      Object.entries(split).map(([name, micros]) => [name, perRequest(micros)]),
    );
  }
  return { ...result, ...cost };
}

interface WrkResult {
  rps: number;
  sent: number;
  p50_us: number;
  p99_us: number;
}

function toMicros(value: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!match) return Number.NaN;
  const amount = Number(match[1]);
  return match[2] === 'us' ? amount : match[2] === 'ms' ? amount * 1000 : amount * 1_000_000;
}

function wrk(url: string, headers: Record<string, string>, seconds = WRK_SLICE_SECONDS): WrkResult {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  const run = () => execFileSync('wrk', [...args, url], { encoding: 'utf8', maxBuffer: 10 * 1024 * 1024 });
  let output = run();
  // Seen twice, the headers pass-through's last slice of a long run (right after Vigil's,
  // in a reversed turn) got no answer at all for 2 s, and the ratios came out null; not
  // reproduced alone. Measured again once; a second silence stops the run with wrk's words.
  if (/\b0 requests in/.test(output)) {
    log(`  ${url}: no answer in ${seconds} s; measuring that slice again`);
    output = run();
    if (/\b0 requests in/.test(output))
      throw new Error(`${url}: wrk got no answer in ${seconds} s:\n${output}`);
  }
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (non2xx)
    throw new Error(`${url}: ${non2xx[1]} non-2xx responses; the benchmark would be measuring errors`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? 0),
    sent: Number(/(\d+) requests in/.exec(output)?.[1] ?? Number.NaN),
    p50_us: toMicros(/\s50%\s+(\S+)/.exec(output)?.[1] ?? ''),
    p99_us: toMicros(/\s99%\s+(\S+)/.exec(output)?.[1] ?? ''),
  };
}

interface OpenLoopResult {
  rate: number;
  achieved_rps: number;
  requests: number;
  sent: number;
  non2xx: number;
  send_lag_p99_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}

/** Fixed-rate load from a separate process (so that its timing is not ours to disturb). */
function openLoop(url: string, rate: number, headers: Record<string, string>): OpenLoopResult {
  const output = execFileSync(
    process.execPath,
    [
      OPEN_LOOP,
      url,
      String(rate),
      String(Math.round((OPEN_SECONDS * 1000) / SLICES)),
      String(OPEN_WARMUP_MS),
      String(CONNECTIONS),
      JSON.stringify(headers),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const result = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as OpenLoopResult;
  if (result.non2xx > 0) throw new Error(`${url}: ${result.non2xx} non-2xx responses at ${rate} req/s`);
  return result;
}

/** Processes whose parent is `pid` (nginx's worker). */
function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function startNginx(upstreamPort: number): Promise<{ port: number; pid: number }> {
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
      return { port, pid: nginx.pid ?? 0 };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error('nginx did not start');
}

/** Vigil from this checkout, or from `checkout` (BENCH_COMPARE), with its own data directory. */
async function startVigil(
  upstreamPort: number,
  checkout?: string,
): Promise<{ url: string; cookie: string; pid: number }> {
  const proxyPort = await freePort();
  const home = join(dir, checkout === undefined ? 'vigil' : 'vigil-compare');
  mkdirSync(home);
  writeFileSync(
    join(home, 'policy.yaml'),
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
  const configPath = join(home, 'vigil.yaml');
  writeFileSync(
    configPath,
    `server:
  proxy_listen: 127.0.0.1:${proxyPort}
  admin_listen: 127.0.0.1:0
  data_dir: ${join(home, 'data')}
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
    checkout === undefined ? undefined : join(checkout, 'src/cli/main.ts'),
  );
  children.push(server.child);
  server.child.stdout?.resume();
  const browser = new Browser();
  const landed = await browser.login(`${server.proxyUrl}/`, 'alice');
  if (landed.status !== 200)
    throw new Error(`login for the benchmark failed: ${landed.status} ${landed.body.slice(0, 200)}`);
  const cookie = browser.jar.header(new URL(server.proxyUrl));
  if (!cookie) throw new Error('no session cookie after login');
  return { url: server.proxyUrl, cookie, pid: server.child.pid ?? 0 };
}

/** Moves every thread of `pid` to `cpu`; threads it starts later inherit the mask. */
function pin(pid: number, cpu: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { stdio: ['ignore', 'ignore', 'inherit'] });
}

// Others' jobs on the machine skew every figure; the load average says how busy it was.
const loadAtStart = loadavg()[0] ?? Number.NaN;
// Before any child starts: they (the upstream, wrk, the open-loop client) inherit it.
if (PIN) pin(process.pid, APPARATUS_CPU);
const upstream = await child(['upstream']);
// BENCH_PROFILE=DIR profiles the pass-through too, to compare what both pay per request.
const passthroughChild = await child(
  ['passthrough', `http://127.0.0.1:${upstream.port}`],
  process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [],
);
// The same pass-through sending Vigil's headers on: of Vigil's cost over (a), the part
// any proxy with Vigil's output pays (measured with wrk only, not at fixed rates).
const headersChild = await child(['passthrough-vigil-headers', `http://127.0.0.1:${upstream.port}`]);
const nginxStarted = await startNginx(upstream.port);
const vigil = await startVigil(upstream.port);
const compared = COMPARE_DIR === undefined ? undefined : await startVigil(upstream.port, COMPARE_DIR);
if (PIN) {
  for (const pid of [
    passthroughChild.pid,
    headersChild.pid,
    vigil.pid,
    ...(compared ? [compared.pid] : []),
    nginxStarted.pid,
    ...childPids(nginxStarted.pid),
  ])
    pin(pid, PROXY_CPU);
}
log(
  `upstream :${upstream.port}  pass-through :${passthroughChild.port}  nginx :${nginxStarted.port}  vigil ${vigil.url}`,
);
// BENCH_HOLD=1: set up, print where everything is, and wait (until Ctrl-C) for a load
// and a profiler run by hand: `wrk -H "cookie: …" URL`, `perf record -p PID`.
if (process.env.BENCH_HOLD === '1') {
  process.stdout.write(
    `${JSON.stringify({
      vigil: { url: `${vigil.url}/`, cookie: vigil.cookie, pid: vigil.pid },
      ...(compared
        ? { compare: { url: `${compared.url}/`, cookie: compared.cookie, pid: compared.pid } }
        : {}),
      passthrough: { url: `http://127.0.0.1:${passthroughChild.port}/`, pid: passthroughChild.pid },
      passthroughVigilHeaders: { url: `http://127.0.0.1:${headersChild.port}/`, pid: headersChild.pid },
      nginx: { url: `http://127.0.0.1:${nginxStarted.port}/`, pid: nginxStarted.pid },
      upstream: { port: upstream.port, pid: upstream.pid },
    })}\n`,
  );
  process.on('SIGINT', () => process.exit(0));
  await new Promise(() => {});
}

interface Target {
  name: 'node-passthrough' | 'node-passthrough-vigil-headers' | 'vigil' | 'vigil-compare' | 'nginx';
  url: string;
  headers: Record<string, string>;
  /** The proxy's processes, whose CPU time is charged to it. */
  pids: () => number[];
}
const targets: Target[] = [
  {
    name: 'node-passthrough',
    url: `http://127.0.0.1:${passthroughChild.port}/`,
    headers: {},
    pids: () => [passthroughChild.pid],
  },
  {
    name: 'node-passthrough-vigil-headers',
    url: `http://127.0.0.1:${headersChild.port}/`,
    headers: { cookie: vigil.cookie },
    pids: () => [headersChild.pid],
  },
  { name: 'vigil', url: `${vigil.url}/`, headers: { cookie: vigil.cookie }, pids: () => [vigil.pid] },
  ...(compared
    ? [
        {
          name: 'vigil-compare' as const,
          url: `${compared.url}/`,
          headers: { cookie: compared.cookie },
          pids: () => [compared.pid],
        },
      ]
    : []),
  {
    name: 'nginx',
    url: `http://127.0.0.1:${nginxStarted.port}/`,
    headers: {},
    pids: () => [nginxStarted.pid, ...childPids(nginxStarted.pid)],
  },
];

/**
 * The targets' order in one turn: reversed every other turn, so that none always runs
 * right after the same one. (Two runs comparing a revision with itself in a fixed order
 * gave ratios of 0.83, every slice below 0.88, and 1.05.)
 */
function inTurn<T>(chosen: readonly T[], turn: number): readonly T[] {
  return turn % 2 === 0 ? chosen : [...chosen].reverse();
}

/** Vigil's CPU is shown by thread (event loop, audit writer, the rest). */
function isVigil(target: Target): boolean {
  return target.name === 'vigil' || target.name === 'vigil-compare';
}

// Warm every path once so that JIT and pools are not measured cold.
for (const target of targets) {
  log(`warming ${target.name}`);
  // As long as the measurement: a first slice after a short warm-up measured a pass-through
  // not yet optimized (half its later req/s).
  wrk(target.url, target.headers, DURATION_SECONDS);
}
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

/** CPU costs of several slices as one: each slice weighs by the requests it sent. */
function combinedCpu(slices: readonly (CpuCost & { sent: number })[]): CpuCost {
  const sent = slices.reduce((total, slice) => total + slice.sent, 0);
  const weighted = (of: (slice: CpuCost) => number | undefined) =>
    Math.round(slices.reduce((total, slice) => total + (of(slice) ?? 0) * slice.sent, 0) / sent);
  const cost: CpuCost = { cpu_us_per_request: weighted((slice) => slice.cpu_us_per_request) };
  if (slices[0]?.box_cpu_us_per_request) {
    cost.box_cpu_us_per_request = {
      proxy: weighted((slice) => slice.box_cpu_us_per_request?.proxy),
      upstream: weighted((slice) => slice.box_cpu_us_per_request?.upstream),
      load: weighted((slice) => slice.box_cpu_us_per_request?.load),
    };
  }
  const threads = slices[0]?.cpu_us_by_thread;
  if (threads) {
    cost.cpu_us_by_thread = Object.fromEntries(
      Object.keys(threads).map((name) => [name, weighted((slice) => slice.cpu_us_by_thread?.[name])]),
    );
  }
  return cost;
}

log(
  `measuring with wrk: ${SLICES} slices of ${WRK_SLICE_SECONDS}s per target, ${CONNECTIONS} connections, in turns`,
);
const wrkSlices: Record<string, (WrkResult & CpuCost)[]> = {};
for (let slice = 0; slice < SLICES; slice++) {
  for (const target of inTurn(targets, slice)) {
    const result = withCpu(target.pids(), () => wrk(target.url, target.headers), isVigil(target));
    log(`  slice ${slice + 1}/${SLICES} ${target.name}: ${JSON.stringify(result)}`);
    wrkSlices[target.name] ??= [];
    wrkSlices[target.name]?.push(result);
  }
}
const results: Record<string, WrkResult & CpuCost & { rps_by_slice: number[] }> = {};
for (const [name, slices] of Object.entries(wrkSlices)) {
  const sent = slices.reduce((total, slice) => total + slice.sent, 0);
  const seconds = slices.reduce((total, slice) => total + slice.sent / slice.rps, 0);
  results[name] = {
    rps: sent / seconds,
    sent,
    p50_us: median(slices.map((slice) => slice.p50_us)),
    p99_us: median(slices.map((slice) => slice.p99_us)),
    rps_by_slice: slices.map((slice) => Math.round(slice.rps)),
    ...combinedCpu(slices),
  };
}

type Measured = (typeof results)[string];
const ours = results.vigil as Measured;
const passthrough = results['node-passthrough'] as Measured;
const nginx = results.nginx as Measured;
const withHeaders = results['node-passthrough-vigil-headers'] as Measured;
/** The fixed-rate loads compare Vigil with the plain pass-through and nginx only. */
const latencyTargets = targets.filter((target) => target.name !== 'node-passthrough-vigil-headers');
const round = (value: number, digits = 3) => Number(value.toFixed(digits));

/** One target's fixed-rate slices at one rate, with its CPU cost over all of them. */
interface OpenLoopRun {
  slices: (OpenLoopResult & CpuCost)[];
  cpu: CpuCost;
}

/** Fixed-rate load on each target in turns, SLICES times. */
function openLoopInTurns(rate: number, chosen: readonly Target[]): Record<string, OpenLoopRun> {
  const runs: Record<string, OpenLoopRun> = {};
  for (let slice = 0; slice < SLICES; slice++) {
    for (const target of inTurn(chosen, slice)) {
      const result = withCpu(
        target.pids(),
        () => openLoop(target.url, rate, target.headers),
        isVigil(target),
      );
      log(`  slice ${slice + 1}/${SLICES} ${target.name}: ${JSON.stringify(result)}`);
      runs[target.name] ??= { slices: [], cpu: { cpu_us_per_request: 0 } };
      runs[target.name]?.slices.push(result);
    }
  }
  for (const run of Object.values(runs)) run.cpu = combinedCpu(run.slices);
  return runs;
}

/** Latency of one target over its slices: the median slice's figures, and the worst. */
const latencyOf = (run: OpenLoopRun | undefined) => {
  const slices = run?.slices ?? [];
  return {
    p50: median(slices.map((result) => result.p50_us)),
    p99: median(slices.map((result) => result.p99_us)),
    p999: median(slices.map((result) => result.p999_us)),
    max: Math.max(...slices.map((result) => result.max_us)),
    p99_by_slice: slices.map((result) => result.p99_us),
  };
};

/** What Vigil adds to the pass-through's p99, slice by neighbouring slice; the median, in ms. */
const addedP99Ms = (runs: Record<string, OpenLoopRun>, name: Target['name'] = 'vigil') => {
  const vigilSlices = runs[name]?.slices ?? [];
  const passthroughSlices = runs['node-passthrough']?.slices ?? [];
  const differences = vigilSlices.map(
    (result, index) => result.p99_us - (passthroughSlices[index]?.p99_us ?? Number.NaN),
  );
  return round(median(differences) / 1000, 2);
};

const halfRate = Math.max(1, Math.round(ours.rps / 2));
const openLoops = OPEN_SECONDS > 0;
if (openLoops)
  log(`open loop at ${halfRate} req/s: ${SLICES} slices of ${OPEN_SECONDS / SLICES}s per target, in turns`);
const half = openLoops ? openLoopInTurns(halfRate, latencyTargets) : {};
// A quarter of the peak as well: on a 2-core machine shared with the load generator and
// the upstream, half of Vigil's peak keeps its main thread 70-85% busy, so the tail at
// half load is queueing; a quarter shows what Vigil adds when the cores are not the limit.
const quarterRate = Math.max(1, Math.round(ours.rps / 4));
if (openLoops) log(`open loop at ${quarterRate} req/s, the same way`);
const quarter = openLoops
  ? openLoopInTurns(
      quarterRate,
      latencyTargets.filter((candidate) => candidate.name !== 'nginx'),
    )
  : {};
const other = results['vigil-compare'];
/** What the fixed-rate runs found, for the JSON line. */
function fixedRateFigures() {
  return {
    half_load: {
      rate: halfRate,
      latency_us: {
        vigil: latencyOf(half.vigil),
        'node-passthrough': latencyOf(half['node-passthrough']),
        nginx: latencyOf(half.nginx),
      },
      cpu_us_per_request: Object.fromEntries(
        Object.entries(half).map(([name, run]) => [name, run.cpu.cpu_us_per_request]),
      ),
      vigil_cpu_us_by_thread: half.vigil?.cpu.cpu_us_by_thread,
      client_send_lag_p99_us: Math.max(
        ...Object.values(half).flatMap((run) => run.slices.map((result) => result.send_lag_p99_us)),
      ),
    },
    added_p99_ms_half_load: addedP99Ms(half),
    quarter_load: {
      rate: quarterRate,
      latency_us: {
        vigil: latencyOf(quarter.vigil),
        'node-passthrough': latencyOf(quarter['node-passthrough']),
      },
    },
    added_p99_ms_quarter_load: addedP99Ms(quarter),
  };
}

const cpuOf = (of: Record<string, { cpu_us_per_request: number }>) =>
  Object.fromEntries(targets.map((target) => [target.name, of[target.name]?.cpu_us_per_request]));
process.stdout.write(
  `${JSON.stringify({
    bench: 'proxy',
    metric: 'requests/s',
    value: round(ours.rps, 0),
    p50_us: ours.p50_us,
    p99_us: ours.p99_us,
    peers: {
      'node-passthrough': round(passthrough.rps, 0),
      nginx: round(nginx.rps, 0),
      'node-passthrough-vigil-headers': round(withHeaders.rps, 0),
    },
    peer_latency_us: {
      'node-passthrough': { p50: passthrough.p50_us, p99: passthrough.p99_us },
      nginx: { p50: nginx.p50_us, p99: nginx.p99_us },
    },
    ratios: {
      'node-passthrough': round(ours.rps / passthrough.rps),
      nginx: round(ours.rps / nginx.rps),
      'node-passthrough-vigil-headers': round(ours.rps / withHeaders.rps),
    },
    // The pass-through sending Vigil's headers, against the plain one: what the headers cost.
    headers_only_ratio_to_passthrough: round(withHeaders.rps / passthrough.rps),
    // Each slice against its neighbours in time: how much of the ratio is the machine.
    ratios_by_slice: {
      'node-passthrough': ours.rps_by_slice.map((rps, index) =>
        round(rps / (passthrough.rps_by_slice[index] ?? Number.NaN)),
      ),
      nginx: ours.rps_by_slice.map((rps, index) => round(rps / (nginx.rps_by_slice[index] ?? Number.NaN))),
      'node-passthrough-vigil-headers': ours.rps_by_slice.map((rps, index) =>
        round(rps / (withHeaders.rps_by_slice[index] ?? Number.NaN)),
      ),
    },
    added_p99_us_vs_passthrough: round(ours.p99_us - passthrough.p99_us, 0),
    cpu_us_per_request: cpuOf(results),
    box_cpu_us_per_request: Object.fromEntries(
      targets.map((target) => [target.name, results[target.name]?.box_cpu_us_per_request]),
    ),
    vigil_cpu_us_by_thread: ours.cpu_us_by_thread,
    ...(other
      ? {
          // This checkout against BENCH_COMPARE's, side by side: above 1, this one is faster.
          compare: {
            checkout: COMPARE_DIR,
            rps: round(other.rps, 0),
            ratio: round(ours.rps / other.rps),
            ratios_by_slice: ours.rps_by_slice.map((rps, index) =>
              round(rps / (other.rps_by_slice[index] ?? Number.NaN)),
            ),
            cpu_us_by_thread: other.cpu_us_by_thread,
            ...(openLoops
              ? {
                  half_load_latency_us: latencyOf(half['vigil-compare']),
                  added_p99_ms_half_load: addedP99Ms(half, 'vigil-compare'),
                  added_p99_ms_quarter_load: addedP99Ms(quarter, 'vigil-compare'),
                }
              : {}),
          },
        }
      : {}),
    ...(openLoops ? fixedRateFigures() : {}),
    machine: {
      cores: availableParallelism(),
      load_1m: [round(loadAtStart, 2), round(loadavg()[0] ?? 0, 2)],
      ...(PIN ? { pinned: { proxy_cpu: PROXY_CPU, upstream_and_load_cpu: APPARATUS_CPU } } : {}),
    },
    load: {
      tool: 'wrk',
      threads: 1,
      connections: CONNECTIONS,
      duration: DURATION,
      slices: SLICES,
      half_load: {
        tool: 'bench/_open-loop.ts (fixed rate, latency from due time)',
        seconds: OPEN_SECONDS,
        slices: SLICES,
        latency: 'median slice; added p99 is the median of differences between neighbouring slices',
      },
    },
    per_request:
      'session cookie unseal + in-memory session, compiled policy, cached ES256 assertion, audit enqueue (SQLite written by a worker thread)',
  })}\n`,
);
process.exit(0);

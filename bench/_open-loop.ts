// Open-loop (fixed-rate) load for bench/proxy.ts, in a process of its own:
//   node bench/_open-loop.ts URL RATE DURATION_MS WARMUP_MS CONNECTIONS [HEADER_JSON]
// Request i is due at start + i / RATE whatever happened to the requests before it, and
// its latency runs from that due time to the end of its response. A server that stalls
// therefore shows in the latency of every request that was due during the stall, not only
// in the one in flight (the "coordinated omission" a closed-loop tool such as wrk has:
// its connections stop sending while they wait, so a stall looks like one slow request).
// A request due while every connection is busy waits for the first free one, and that
// wait counts too. Prints one JSON line with the latency percentiles of the requests due
// after the warm-up.
//
// HTTP/1.1 over plain keep-alive sockets, one request in flight per connection, and just
// enough response parsing for the bench upstream's answers (status line, Content-Length):
// on a 2-core machine the load generator's own CPU competes with the servers measured,
// and a full client such as undici costs several times more per request.
import { connect, type Socket } from 'node:net';

const [url, rateText, durationText, warmupText, connectionsText, headerJson] = process.argv.slice(2);
if (!url || !rateText || !durationText || !warmupText || !connectionsText) {
  process.stderr.write('usage: _open-loop.ts URL RATE DURATION_MS WARMUP_MS CONNECTIONS [HEADER_JSON]\n');
  process.exit(2);
}
const rate = Number(rateText);
const durationMs = Number(durationText);
const warmupMs = Number(warmupText);
const target = new URL(url);
const extra = JSON.parse(headerJson ?? '{}') as Record<string, string>;
const REQUEST = Buffer.from(
  `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${target.host}\r\n${Object.entries(extra)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`,
  'latin1',
);
const HEADER_END = Buffer.from('\r\n\r\n');

const total = Math.floor(((warmupMs + durationMs) / 1000) * rate);
const firstMeasured = Math.floor((warmupMs / 1000) * rate);
/** Latency in µs per measured request. */
const latencies = new Float64Array(total - firstMeasured);
/** How late the sender noticed each measured request was due, in µs: its own lag, not the server's. */
const sendLags = new Float64Array(total - firstMeasured);
const intervalMs = 1000 / rate;
let start = 0;
let sent = 0;
let done = 0;
let non2xx = 0;
/** Due requests no connection was free for, oldest first. */
const waiting: number[] = [];
let waitingHead = 0;
let finishedAll = false;
let finish: () => void = () => {};
const finished = new Promise<void>((resolve) => {
  finish = resolve;
});

class Connection {
  #socket: Socket;
  #index = -1;
  #buffered: Buffer = Buffer.alloc(0);
  constructor() {
    this.#socket = this.#open();
  }
  #open(): Socket {
    const socket = connect({ host: target.hostname, port: Number(target.port || 80), noDelay: true });
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('close', () => {
      if (socket !== this.#socket || finishedAll) return;
      // An idle keep-alive connection may be closed by the server (its keep-alive
      // timeout); like a browser, open another. One closed mid-request is a failure.
      if (this.idle) {
        this.#socket = this.#open();
        return;
      }
      process.stderr.write(`open loop: ${url} closed a connection with a request in flight\n`);
      process.exit(1);
    });
    socket.on('error', () => {});
    return socket;
  }
  get idle(): boolean {
    return this.#index < 0;
  }
  send(index: number): void {
    this.#index = index;
    this.#socket.write(REQUEST);
  }
  close(): void {
    this.#socket.destroy();
  }
  #read(chunk: Buffer): void {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const end = this.#buffered.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.#buffered.toString('latin1', 0, end);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? Number.NaN);
    if (Number.isNaN(length)) throw new Error('the open-loop client reads Content-Length responses only');
    if (this.#buffered.length < end + 4 + length) return;
    this.#buffered = this.#buffered.subarray(end + 4 + length);
    const status = Number(head.slice(9, 12));
    // A server may close a keep-alive connection after so many requests (nginx:
    // keepalive_requests); like wrk, open another one.
    if (/\r\nconnection:\s*close/i.test(head)) {
      const closing = this.#socket;
      this.#socket = this.#open();
      closing.destroy();
    }
    if (status < 200 || status >= 400) non2xx++;
    const index = this.#index;
    this.#index = -1;
    // The oldest waiting request first; then whatever fell due meanwhile.
    if (waitingHead < waiting.length) this.send(waiting[waitingHead++] as number);
    complete(index);
  }
}

const dueAt = (index: number) => start + index * intervalMs;
const connections = Array.from({ length: Number(connectionsText) }, () => new Connection());

function complete(index: number): void {
  if (index >= firstMeasured) latencies[index - firstMeasured] = (performance.now() - dueAt(index)) * 1000;
  done++;
  // Completions come far more often than a 1 ms timer tick: sending what is due from
  // here too keeps each request close to its due time.
  pump();
  if (done === total) {
    finishedAll = true;
    finish();
  }
}

function pump(): void {
  const now = performance.now();
  const due = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
  while (sent < due) {
    const index = sent++;
    if (index >= firstMeasured) sendLags[index - firstMeasured] = (now - dueAt(index)) * 1000;
    const free = waitingHead < waiting.length ? undefined : connections.find((connection) => connection.idle);
    if (free) free.send(index);
    else waiting.push(index);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Longest the loop sleeps without looking at its sockets when a request is due within a timer tick. */
const SHORT_SLEEP_MS = 0.1;

/**
 * Timers have a 1 ms granularity, too coarse at thousands of requests a second: close to
 * a due time the loop sleeps in steps of 0.1 ms (Atomics.wait, no busy spin) and lets
 * socket events in between each step.
 */
function tick(): void {
  pump();
  if (sent >= total) return;
  const wait = dueAt(sent) - performance.now();
  if (wait > 2) {
    setTimeout(tick, wait - 1);
    return;
  }
  if (wait > 0) Atomics.wait(sleeper, 0, 0, Math.min(wait, SHORT_SLEEP_MS));
  setImmediate(tick);
}

// Connect every socket before the clock starts.
await new Promise((resolve) => setTimeout(resolve, 200));
start = performance.now();
const cpuAtStart = process.cpuUsage();
tick();
await finished;
const elapsedS = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuAtStart);
for (const connection of connections) connection.close();

const sorted = (values: Float64Array) => Array.from(values).sort((a, b) => a - b);
const percentile = (values: number[], p: number) =>
  Math.round(values[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] ?? Number.NaN);
const measured = sorted(latencies);
const lags = sorted(sendLags);
process.stdout.write(
  `${JSON.stringify({
    rate,
    achieved_rps: Math.round(total / elapsedS),
    requests: measured.length,
    sent: total,
    non2xx,
    send_lag_p99_us: percentile(lags, 99),
    client_cpu_us_per_request: Math.round((cpu.user + cpu.system) / total),
    p50_us: percentile(measured, 50),
    p90_us: percentile(measured, 90),
    p99_us: percentile(measured, 99),
    p999_us: percentile(measured, 99.9),
    max_us: Math.round(measured.at(-1) ?? Number.NaN),
  })}\n`,
);

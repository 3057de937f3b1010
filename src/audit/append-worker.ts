// The audit writer's thread (see workerAppender in appender.ts): owns a connection to the
// SQLite file and the detectors' windows and, per batch, turns queued events into events,
// runs the detectors, encodes, links the chain, inserts, signs a due checkpoint and
// commits, one batch at a time in arrival order.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { openStore, type Store } from '../store/index.ts';
import { ChainAppender, type WorkerBatch, type WorkerInit, type WorkerReply } from './appender.ts';
import { detectorFromSpec } from './detectors/specs.ts';
import { threadPace } from './pace.ts';

const port = parentPort;
if (!port) throw new Error('append-worker.ts runs as a worker thread of the audit writer');
const { file, signer, detectors, dedupeMs, idPrefix } = workerData as WorkerInit;
/**
 * Longest the thread runs a batch without a break (see threadPace). Each sleep costs the
 * thread CPU too: at the proxy's peak, 0.1 ms slices took the writer from 10 to 11.9 µs an
 * event, 0.25 ms to 10.8, with no tail difference we could measure between the two.
 */
const PACE_SLICE_MS = 0.25;
/**
 * The checkpoint that copies the WAL back into the database runs inside a commit and
 * cannot be paced: at SQLite's default of 1000 pages it held a core for 4–5.6 ms (the
 * longest runs of this thread in `perf record`); at 128, 1–3 ms (the pages of a batch or
 * two, and the fsync); at 32, hardly shorter for a fifth more CPU. The pages copied are
 * the same, in more, smaller checkpoints, and they happen here, not in a commit on the
 * event loop.
 */
const WRITER_WAL_AUTOCHECKPOINT_PAGES = 128;

/**
 * Nice value of this thread (Linux): when it and the event loop want the same core, the
 * event loop, which requests wait on, gets most of it; the writer still has the idle
 * time of every core, where it runs at the proxy's peak. Side by side with the thread at
 * the process's priority (bench/proxy.ts, BENCH_COMPARE, 2-core VM): Vigil's added p99
 * at half load 1.6 vs 13.2 ms and 2.6 vs 11.8 ms, peak req/s 1.11, 0.92 and 1.09 times,
 * no request refused for a full queue.
 */
const WRITER_NICE = 10;
try {
  // /proc/thread-self → "<pid>/task/<tid>"; setpriority on a tid sets that thread's nice.
  const tid = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
  if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, WRITER_NICE);
} catch {
  // Not Linux, or not allowed: the thread runs at the process's priority.
}

// The schema is the server's business: this connection never migrates.
const opened: Promise<Store> = openStore(`sqlite://${file}`, {
  migrate: false,
  walAutocheckpointPages: WRITER_WAL_AUTOCHECKPOINT_PAGES,
});
// A failed open fails the batch that is waiting and asks for a new thread, which opens the
// file again when the writer retries (a lock held too long at start-up passes; this
// connection would not).
let openFailed = false;
opened.catch(() => {
  openFailed = true;
});
const appender: Promise<ChainAppender> = opened.then(
  (store) =>
    new ChainAppender(store, {
      signer,
      detectors: detectors.map(detectorFromSpec),
      dedupeMs,
      idPrefix,
      pace: (request) => (request.hurry ? undefined : threadPace(PACE_SLICE_MS)),
    }),
);
appender.catch(() => {});
let tail: Promise<void> = Promise.resolve();

async function append(batch: WorkerBatch): Promise<WorkerReply> {
  try {
    const summary = await (await appender).append(batch);
    return { id: batch.id, ok: true, summary };
  } catch (error) {
    const { name, message, code } = error as { name?: string; message?: string; code?: unknown };
    return {
      id: batch.id,
      ok: false,
      error: {
        name: typeof name === 'string' ? name : 'Error',
        message: typeof message === 'string' ? message : String(error),
        ...(typeof code === 'string' ? { code } : {}),
      },
      ...(openFailed ? { replaceThread: true } : {}),
    };
  }
}

port.on('message', (message: WorkerBatch | { type: 'close' }) => {
  if (message.type === 'append') {
    tail = tail.then(async () => port.postMessage(await append(message)));
    return;
  }
  tail = tail.then(async () => {
    await opened.then((store) => store.close()).catch(() => {});
    port.close();
  });
});

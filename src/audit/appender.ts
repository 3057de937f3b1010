import { Worker } from 'node:worker_threads';
import type { Store } from '../store/index.ts';
import { type AppendOptions, appendBatch } from './append.ts';
import type { PreparedEvent } from './chain.ts';
import type { CheckpointSigner } from './checkpoint.ts';

/** What a committed batch became in the chain. */
export interface AppendSummary {
  /** Seq of the batch's first event; its events follow without gaps. */
  firstSeq: number;
  lastSeq: number;
  /** Each event's chain hash, in batch order; only when asked for (sinks need them). */
  hashes?: string[];
  checkpoint?: { seq: number; hash: string };
}

export interface AppendRequest {
  events: readonly PreparedEvent[];
  checkpointEvery: number;
  now: number;
  /** Return every event's hash, not only the last. */
  hashes: boolean;
}

/** Commits prepared batches to the chain; one batch at a time. */
export interface Appender {
  append(request: AppendRequest): Promise<AppendSummary>;
  close(): Promise<void>;
}

/** Writes from the calling thread through the store's own connection (PostgreSQL, `:memory:`). */
export function inThreadAppender(store: Store, signer: CheckpointSigner | undefined): Appender {
  return {
    async append(request) {
      const options: AppendOptions = {
        checkpointEvery: request.checkpointEvery,
        now: request.now,
        ...(signer ? { signer } : {}),
      };
      const { rows, checkpoint } = await appendBatch(store, request.events, options);
      return summarize(rows, request.hashes, checkpoint);
    },
    close: async () => {},
  };
}

export function summarize(
  rows: readonly { seq: number; hash: string }[],
  hashes: boolean,
  checkpoint: AppendSummary['checkpoint'],
): AppendSummary {
  const first = rows[0]?.seq ?? 0;
  const summary: AppendSummary = { firstSeq: first, lastSeq: rows.at(-1)?.seq ?? 0 };
  if (hashes) summary.hashes = rows.map((row) => row.hash);
  if (checkpoint) summary.checkpoint = checkpoint;
  return summary;
}

/** Messages between the writer and its worker (src/audit/append-worker.ts). */
export interface WorkerInit {
  file: string;
  signer: CheckpointSigner | undefined;
}

/** A batch as columns: a structured clone of four arrays is far cheaper than of one object per event. */
export interface WorkerBatch {
  type: 'append';
  id: number;
  ids: string[];
  times: number[];
  kinds: PreparedEvent['kind'][];
  data: string[];
  checkpointEvery: number;
  now: number;
  hashes: boolean;
}

export type WorkerReply =
  | { id: number; ok: true; summary: AppendSummary }
  | { id: number; ok: false; error: { name: string; message: string; code?: string } };

/** How long close() waits for the worker to finish its last transaction and close the file. */
const WORKER_CLOSE_TIMEOUT_MS = 10_000;

/** The worker's entry: .ts when running from source, .js when compiled into dist/. */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './append-worker.ts' : './append-worker.js',
  import.meta.url,
);

/**
 * Writes from a worker thread holding its own connection to the SQLite file, so that
 * hashing, inserts and the fsync of each commit never hold the server's event loop. The
 * worker starts on the first batch; if it dies, pending batches fail (and are retried by
 * the writer, which keeps them) and the next batch starts a new one. The worker keeps the
 * process alive only while a batch is in flight, like the writer's unref'd timer.
 */
export function workerAppender(file: string, signer: CheckpointSigner | undefined): Appender {
  let worker: Worker | undefined;
  let nextId = 0;
  const pending = new Map<
    number,
    { resolve: (summary: AppendSummary) => void; reject: (error: Error) => void }
  >();

  const failAll = (error: Error) => {
    for (const entry of pending.values()) entry.reject(error);
    pending.clear();
  };
  const start = (): Worker => {
    const init: WorkerInit = { file, signer };
    // The worker inherits the process's flags (a profiler, say), except one about how the
    // main entry was given, which a worker refuses (`node --input-type=module -e …`).
    const inherited = process.execArgv.some((flag) => flag.startsWith('--input-type'))
      ? { execArgv: process.execArgv.filter((flag) => !flag.startsWith('--input-type')) }
      : {};
    const started = new Worker(WORKER_URL, { workerData: init, ...inherited });
    started.unref();
    started.on('message', (reply: WorkerReply) => {
      const entry = pending.get(reply.id);
      if (!entry) return;
      pending.delete(reply.id);
      if (pending.size === 0) started.unref();
      if (reply.ok) entry.resolve(reply.summary);
      else entry.reject(Object.assign(new Error(reply.error.message), reply.error));
    });
    started.on('error', (error) => {
      if (worker === started) worker = undefined;
      failAll(error);
    });
    started.on('exit', (code) => {
      if (worker === started) worker = undefined;
      failAll(new Error(`audit writer thread exited with code ${code}`));
    });
    return started;
  };

  return {
    append(request) {
      worker ??= start();
      const id = ++nextId;
      const size = request.events.length;
      const batch: WorkerBatch = {
        type: 'append',
        id,
        ids: new Array(size),
        times: new Array(size),
        kinds: new Array(size),
        data: new Array(size),
        checkpointEvery: request.checkpointEvery,
        now: request.now,
        hashes: request.hashes,
      };
      for (let index = 0; index < size; index++) {
        const event = request.events[index] as PreparedEvent;
        batch.ids[index] = event.id;
        batch.times[index] = event.time;
        batch.kinds[index] = event.kind;
        batch.data[index] = event.dataJson;
      }
      const promise = new Promise<AppendSummary>((resolve, reject) => pending.set(id, { resolve, reject }));
      worker.ref();
      worker.postMessage(batch);
      return promise;
    },
    async close() {
      const closing = worker;
      worker = undefined;
      if (!closing) return;
      closing.ref();
      const exited = new Promise<void>((resolve) => closing.once('exit', () => resolve()));
      closing.postMessage({ type: 'close' });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), WORKER_CLOSE_TIMEOUT_MS);
      });
      const outcome = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') await closing.terminate();
    },
  };
}

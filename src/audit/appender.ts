import { Worker } from 'node:worker_threads';
import type { AuditEventsTable, Store } from '../store/index.ts';
import { appendBatch } from './append.ts';
import { batchIdPrefix, recordFromRow } from './chain.ts';
import type { CheckpointSigner } from './checkpoint.ts';
import type { Detector, DetectorSpec } from './detect.ts';
import { eventLoopPace, type Pace } from './pace.ts';
import { BatchPreparer, type InvalidEvent, type PreparedBatch } from './prepare.ts';
import { type QueuedEvents, sendableQueue } from './queue.ts';
import type { SinkEntry } from './sink.ts';

/** What a committed batch became in the chain. */
export interface AppendSummary {
  /** Seq of the batch's first event; its events follow without gaps. */
  firstSeq: number;
  lastSeq: number;
  /** Events appended, the alerts detectors raised included. */
  appended: number;
  /** Alerts in the batch, by detector name. */
  alerts: Record<string, number>;
  /** Enqueued events that could not be encoded; each is an `audit-writer` alert in the chain. */
  invalid: InvalidEvent[];
  /** Every event as stored, with its chain hash; only when asked for (sinks need them). */
  entries?: SinkEntry[];
  checkpoint?: { seq: number; hash: string };
}

export interface AppendRequest {
  /**
   * Names the batch: a write that failed is retried with the same id and the same
   * events, which are then not run through the detectors again.
   */
  id: number;
  queued: QueuedEvents;
  checkpointEvery: number;
  now: number;
  /** Return every event as stored (`entries`), for sinks. */
  entries: boolean;
  /**
   * The log is behind (the batch is full, or a full one waits behind it): write it at
   * full speed rather than at the writer thread's pace (see threadPace).
   */
  hurry?: boolean;
}

/** Detects, encodes and commits batches to the chain; one batch at a time. */
export interface Appender {
  append(request: AppendRequest): Promise<AppendSummary>;
  close(): Promise<void>;
}

/**
 * Prepares and commits batches on one store, keeping a prepared batch until it is
 * committed, so that a retried write links the same events with the same ids. Runs in
 * the calling thread (PostgreSQL, `:memory:`) or in the writer's worker thread.
 */
/** What an appender needs besides its store, on whichever thread it runs. */
export interface ChainAppenderOptions {
  signer: CheckpointSigner | undefined;
  detectors: readonly Detector[];
  dedupeMs: number | undefined;
  /** The writer's part of its event ids (eventIdPrefix): the same for every thread it starts. */
  idPrefix: string;
  /** Makes the pace of one batch: how it hands the CPU back between steps (pace.ts); none: at once. */
  pace?: (request: AppendRequest) => Pace | undefined;
}

export class ChainAppender {
  readonly #store: Store;
  readonly #signer: CheckpointSigner | undefined;
  readonly #preparer: BatchPreparer;
  readonly #pace: ((request: AppendRequest) => Pace | undefined) | undefined;
  readonly #idPrefix: string;
  #prepared: { id: number; batch: PreparedBatch } | undefined;

  constructor(store: Store, options: ChainAppenderOptions) {
    this.#store = store;
    this.#signer = options.signer;
    this.#pace = options.pace;
    this.#preparer = new BatchPreparer(options.detectors, {
      dedupeMs: options.dedupeMs,
      idPrefix: options.idPrefix,
    });
    this.#idPrefix = options.idPrefix;
  }

  async append(request: AppendRequest): Promise<AppendSummary> {
    const pace = this.#pace?.(request);
    let prepared = this.#prepared?.id === request.id ? this.#prepared.batch : undefined;
    if (prepared === undefined) {
      prepared = await this.#preparer.prepare(request.queued, request.id, request.now, pace);
      this.#prepared = { id: request.id, batch: prepared };
    }
    const { rows, checkpoint, replayed } = await appendBatch(this.#store, prepared.events, {
      batchIdPrefix: batchIdPrefix(this.#idPrefix, request.id),
      checkpointEvery: request.checkpointEvery,
      now: request.now,
      ...(this.#signer ? { signer: this.#signer } : {}),
      ...(pace ? { pace } : {}),
    });
    this.#prepared = undefined;
    const summary: AppendSummary = {
      firstSeq: rows[0]?.seq ?? 0,
      lastSeq: rows.at(-1)?.seq ?? 0,
      appended: rows.length,
      // Prepared again after a lost answer, the batch's alerts may differ from the stored ones.
      alerts: replayed ? alertsIn(rows) : prepared.alerts,
      invalid: prepared.invalid,
    };
    if (request.entries)
      summary.entries = rows.map((row) => ({ record: recordFromRow(row), hash: row.hash }));
    if (checkpoint) summary.checkpoint = checkpoint;
    return summary;
  }
}

function alertsIn(rows: readonly AuditEventsTable[]): Record<string, number> {
  const alerts: Record<string, number> = {};
  for (const row of rows) {
    if (row.kind !== 'alert') continue;
    const { detector } = recordFromRow(row) as { detector: string };
    alerts[detector] = (alerts[detector] ?? 0) + 1;
  }
  return alerts;
}

/** Events prepared per turn of the event loop when the appender shares it with requests. */
const IN_THREAD_YIELD_EVERY = 128;

/** Prepares and writes from the calling thread through the store's own connection (PostgreSQL, `:memory:`). */
export function inThreadAppender(store: Store, options: Omit<ChainAppenderOptions, 'pace'>): Appender {
  const appender = new ChainAppender(store, { ...options, pace: () => eventLoopPace(IN_THREAD_YIELD_EVERY) });
  return { append: (request) => appender.append(request), close: async () => {} };
}

/** Messages between the writer and its worker (src/audit/append-worker.ts). */
/** A worker builds its detectors from their specs: functions cannot cross threads. */
export type WorkerInit = { file: string; detectors: readonly DetectorSpec[] } & Omit<
  ChainAppenderOptions,
  'detectors' | 'pace'
>;

export type WorkerBatch = AppendRequest & { type: 'append' };

export type WorkerReply =
  | { id: number; ok: true; summary: AppendSummary }
  | {
      id: number;
      ok: false;
      error: { name: string; message: string; code?: string };
      /** The thread cannot write (its file did not open): the next batch needs a new one. */
      replaceThread?: true;
    };

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
export function workerAppender(file: string, options: Omit<WorkerInit, 'file'>): Appender {
  let worker: Worker | undefined;
  const pending = new Map<
    number,
    { thread: Worker; resolve: (summary: AppendSummary) => void; reject: (error: Error) => void }
  >();

  /** A thread keeps the process alive only while it owes an answer. */
  const unrefWhenIdle = (thread: Worker) => {
    for (const entry of pending.values()) if (entry.thread === thread) return;
    thread.unref();
  };
  /** Fails the batches a thread that ended will not answer for. */
  const failAll = (thread: Worker, error: Error) => {
    for (const [id, entry] of pending) {
      if (entry.thread !== thread) continue;
      pending.delete(id);
      entry.reject(error);
    }
  };
  const start = (): Worker => {
    const init: WorkerInit = { file, ...options };
    // The worker inherits the process's flags (a profiler, say), except one about how the
    // main entry was given, which a worker refuses (`node --input-type=module -e …`).
    const inherited = process.execArgv.some((flag) => flag.startsWith('--input-type'))
      ? { execArgv: process.execArgv.filter((flag) => !flag.startsWith('--input-type')) }
      : {};
    const started = new Worker(WORKER_URL, { workerData: init, ...inherited });
    started.unref();
    started.on('message', (reply: WorkerReply) => {
      const entry = pending.get(reply.id);
      // A late answer from a thread already replaced is not the retry's answer.
      if (!entry || entry.thread !== started) return;
      pending.delete(reply.id);
      unrefWhenIdle(started);
      if (reply.ok) {
        entry.resolve(reply.summary);
        return;
      }
      if (reply.replaceThread && worker === started) {
        worker = undefined;
        void started.terminate();
      }
      entry.reject(Object.assign(new Error(reply.error.message), reply.error));
    });
    started.on('error', (error) => {
      if (worker === started) worker = undefined;
      failAll(started, error);
    });
    started.on('exit', (code) => {
      if (worker === started) worker = undefined;
      failAll(started, new Error(`audit writer thread exited with code ${code}`));
    });
    return started;
  };

  return {
    append(request) {
      worker ??= start();
      const thread = worker;
      const id = request.id;
      const promise = new Promise<AppendSummary>((resolve, reject) =>
        pending.set(id, { thread, resolve, reject }),
      );
      thread.ref();
      try {
        try {
          thread.postMessage({ ...request, type: 'append' } satisfies WorkerBatch);
        } catch {
          // An event a structured clone refuses (a function in admin details, say).
          thread.postMessage({
            ...request,
            queued: sendableQueue(request.queued),
            type: 'append',
          } satisfies WorkerBatch);
        }
      } catch (error) {
        // Not sent: nothing will answer for this batch, so it must not keep the process alive.
        pending.delete(id);
        unrefWhenIdle(thread);
        throw error;
      }
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

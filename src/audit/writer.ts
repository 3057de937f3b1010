import { VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import type { Store } from '../store/index.ts';
import { type Logger, silentLogger } from '../telemetry/index.ts';
import { type Appender, type AppendSummary, inThreadAppender, workerAppender } from './appender.ts';
import { eventIdPrefix } from './chain.ts';
import type { CheckpointSigner } from './checkpoint.ts';
import { type Detector, specOf } from './detect.ts';
import type { AuditEvent, DecisionFacts } from './events.ts';
import { EventQueue, type QueuedEvents } from './queue.ts';
import type { AuditSink, SinkEntry } from './sink.ts';

export const DEFAULT_BATCH_SIZE = 2000;
export const MAX_BATCH_SIZE = 100_000;
export const DEFAULT_FLUSH_INTERVAL_MS = 50;
export const DEFAULT_QUEUE_LIMIT = 100_000;
export const DEFAULT_CHECKPOINT_EVERY = 10_000;
/** Batches a slow sink may fall behind before further batches are dropped for it. */
export const DEFAULT_SINK_BACKLOG = 64;
/** How long close() waits for sinks to drain. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;

export type OnFull = 'fail-closed' | 'shed';

export interface AuditLogOptions {
  clock?: Clock;
  /** Events per transaction. */
  batchSize?: number;
  /** Longest an event waits in the queue before a write starts. */
  flushIntervalMs?: number;
  /** Events waiting to be written; beyond it `onFull` applies. */
  queueLimit?: number;
  /**
   * `fail-closed` (default): a full queue makes `enqueue` return false and the caller
   * denies the request. `shed`: the event is dropped, counted, and the request proceeds.
   */
  onFull?: OnFull;
  /** Signs a checkpoint every `checkpointEvery` events; no checkpoints without it. */
  signer?: CheckpointSigner;
  checkpointEvery?: number;
  sinks?: readonly AuditSink[];
  detectors?: readonly Detector[];
  /** Window in which a second alert for the same (detector, key) is suppressed. */
  alertDedupeMs?: number;
  logger?: Logger;
  /**
   * Commit SQLite batches from a worker thread with its own connection (default true for
   * a SQLite file), so that detection, encoding, hashing, inserts and fsync never hold the
   * event loop. PostgreSQL and `:memory:` are always written from this thread (pg is
   * asynchronous I/O already), as is a log with a detector that is not a built-in one.
   */
  worker?: boolean;
}

export interface AuditLogStats {
  /** Events waiting for a write. */
  queued: number;
  /** Events accepted by enqueue. */
  accepted: number;
  /** Events refused (fail-closed) or shed because the queue was full, or refused after close. */
  dropped: number;
  /** Events enqueued that could not be encoded (a caller bug); each is recorded as an `audit-writer` alert instead. */
  invalid: number;
  /** Events durably appended, alerts included. */
  appended: number;
  /** Highest seq this log has made durable; 0 before the first batch. */
  lastSeq: number;
  batches: number;
  writeErrors: number;
  checkpoints: number;
  /** Alerts raised, by detector name. */
  alerts: Record<string, number>;
  sinkErrors: number;
  sinkDropped: number;
}

/** The append-only, hash-chained audit log of one process. */
export interface AuditLog {
  /**
   * Queues an event; synchronous and allocation-light, for the request path. Returns
   * false when the caller must deny: the queue is full under `fail-closed`, or the log
   * is closed.
   */
  enqueue(event: AuditEvent): boolean;
  /**
   * Queues an enforcement point's decision, as `enqueue(decisionEvent(facts))` would, but
   * without building the event on the request path: its fields wait as columns. The
   * decision and the groups and amr lists are kept by reference until the batch is
   * taken, so they must not change afterwards (the proxy's are shared and frozen).
   */
  enqueueDecision(facts: DecisionFacts): boolean;
  /** Resolves once every event enqueued before the call is committed; rejects if a write fails. */
  flush(): Promise<void>;
  /** Flushes, stops the timer, drains sinks (bounded wait) and closes them. Does not close the store. */
  close(): Promise<void>;
  readonly stats: Readonly<AuditLogStats>;
  /** The store written to, for queries and the admin API. */
  readonly store: Store;
}

interface PendingBatch {
  /** Kept until committed: a failed write is retried with the same id and events. */
  id: number;
  queued: QueuedEvents;
  /** Enqueued events this batch carries (alerts are extra). */
  inputs: number;
}

/**
 * Creates the writer. Only one writer per store should run at a time unless the store
 * serialises them: both SQLite (`BEGIN IMMEDIATE`) and PostgreSQL (advisory lock in the
 * batch transaction) do, and each batch reads the chain tail under that lock, so several
 * replicas still produce one chain.
 */
export function createAuditLog(store: Store, options: AuditLogOptions = {}): AuditLog {
  return new Writer(store, options);
}

class Writer implements AuditLog {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #queueLimit: number;
  readonly #failClosed: boolean;
  readonly #appender: Appender;
  readonly #checkpointEvery: number;
  readonly #sinks: readonly AuditSink[];
  readonly #logger: Logger;
  #batchIds = 0;
  readonly #stats: AuditLogStats = {
    queued: 0,
    accepted: 0,
    dropped: 0,
    invalid: 0,
    appended: 0,
    lastSeq: 0,
    batches: 0,
    writeErrors: 0,
    checkpoints: 0,
    alerts: {},
    sinkErrors: 0,
    sinkDropped: 0,
  };
  readonly #queue: EventQueue;
  #pending: PendingBatch | undefined;
  #inflight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timerImmediate = false;
  #retryDelay = RETRY_MIN_MS;
  #closed = false;
  /** Enqueued events taken off the queue and committed (or found invalid). */
  #done = 0;
  readonly #sinkTails = new Map<AuditSink, { tail: Promise<void>; backlog: number }>();

  constructor(store: Store, options: AuditLogOptions) {
    const positive = (name: string, value: number | undefined, fallback: number) => {
      const chosen = value ?? fallback;
      if (!Number.isInteger(chosen) || chosen < 1) throw new TypeError(`${name} must be a positive integer`);
      return chosen;
    };
    this.#store = store;
    this.#clock = options.clock ?? systemClock;
    this.#batchSize = positive('batchSize', options.batchSize, DEFAULT_BATCH_SIZE);
    // Event ids number a batch's events in 4 base-36 digits; past that they stop sorting.
    if (this.#batchSize > MAX_BATCH_SIZE) throw new TypeError(`batchSize must be at most ${MAX_BATCH_SIZE}`);
    this.#queue = new EventQueue(this.#batchSize);
    this.#flushIntervalMs = positive('flushIntervalMs', options.flushIntervalMs, DEFAULT_FLUSH_INTERVAL_MS);
    this.#queueLimit = positive('queueLimit', options.queueLimit, DEFAULT_QUEUE_LIMIT);
    if (options.onFull !== undefined && options.onFull !== 'fail-closed' && options.onFull !== 'shed') {
      throw new TypeError('onFull must be fail-closed or shed');
    }
    this.#failClosed = options.onFull !== 'shed';
    const signer: CheckpointSigner | undefined = options.signer;
    const detectors = options.detectors ?? [];
    const specs = detectors.flatMap((detector) => {
      const spec = specOf(detector);
      return spec ? [spec] : [];
    });
    const idPrefix = eventIdPrefix(this.#clock.now());
    this.#appender =
      store.dialect === 'sqlite' &&
      store.file !== undefined &&
      options.worker !== false &&
      specs.length === detectors.length
        ? workerAppender(store.file, {
            signer,
            detectors: specs,
            dedupeMs: options.alertDedupeMs,
            idPrefix,
          })
        : inThreadAppender(store, {
            signer,
            detectors,
            dedupeMs: options.alertDedupeMs,
            idPrefix,
          });
    this.#checkpointEvery = positive('checkpointEvery', options.checkpointEvery, DEFAULT_CHECKPOINT_EVERY);
    this.#sinks = options.sinks ?? [];
    this.#logger = options.logger ?? silentLogger();
    for (const sink of this.#sinks) this.#sinkTails.set(sink, { tail: Promise.resolve(), backlog: 0 });
  }

  get store(): Store {
    return this.#store;
  }

  get stats(): Readonly<AuditLogStats> {
    return { ...this.#stats, queued: this.#queue.length, alerts: { ...this.#stats.alerts } };
  }

  enqueue(event: AuditEvent): boolean {
    if (!this.#admit()) return !this.#failClosed && !this.#closed;
    this.#queue.push(event);
    this.#accepted();
    return true;
  }

  enqueueDecision(facts: DecisionFacts): boolean {
    if (!this.#admit()) return !this.#failClosed && !this.#closed;
    this.#queue.pushDecision(facts);
    this.#accepted();
    return true;
  }

  /** False (and counted as dropped) when the log is closed or the queue is full. */
  #admit(): boolean {
    if (!this.#closed && this.#queue.length < this.#queueLimit) return true;
    this.#stats.dropped++;
    return false;
  }

  #accepted(): void {
    this.#stats.accepted++;
    const queued = this.#queue.length;
    // At most one timer call per batch: the hot path must not churn timers.
    if (this.#timer === undefined) {
      this.#schedule(queued >= this.#batchSize ? 0 : this.#flushIntervalMs);
    } else if (queued === this.#batchSize && !this.#timerImmediate && this.#inflight === undefined) {
      this.#schedule(0);
    }
  }

  async flush(): Promise<void> {
    const target = this.#stats.accepted;
    // Bounded: each pass commits a batch or throws, so this ends after at most
    // ceil(queued / batchSize) + 1 passes.
    while (this.#done < target) await this.#writeOne();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Refuse new events first, so that everything accepted is inside the final flush.
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      const drained = Promise.all([...this.#sinkTails.values()].map((entry) => entry.tail));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, DEFAULT_CLOSE_TIMEOUT_MS);
      });
      await Promise.race([drained, timeout]);
      clearTimeout(timer);
      for (const sink of this.#sinks) await sink.close?.().catch(() => {});
      await this.#appender.close();
    }
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timerImmediate = delayMs === 0;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerImmediate = false;
      this.#writeOne().then(
        () => {
          this.#retryDelay = RETRY_MIN_MS;
          const queued = this.#queue.length;
          if (queued > 0 || this.#pending) {
            this.#schedule(queued >= this.#batchSize ? 0 : this.#flushIntervalMs);
          }
        },
        (error: unknown) => {
          this.#logger.error({ err: error }, 'audit write failed; retrying');
          if (this.#closed) return;
          this.#schedule(this.#retryDelay);
          this.#retryDelay = Math.min(this.#retryDelay * 2, RETRY_MAX_MS);
        },
      );
    }, delayMs);
    // The server keeps the process alive; a library user calls close(), which flushes.
    this.#timer.unref();
  }

  /** Commits one batch; concurrent callers share the same write. */
  #writeOne(): Promise<void> {
    this.#inflight ??= this.#writeBatch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #writeBatch(): Promise<void> {
    if (!this.#pending) {
      const queued = this.#queue.take();
      if (queued === undefined) return;
      this.#pending = { id: ++this.#batchIds, queued, inputs: queued.order.length };
    }
    const batch = this.#pending;
    let result: AppendSummary;
    try {
      result = await this.#appender.append({
        id: batch.id,
        queued: batch.queued,
        checkpointEvery: this.#checkpointEvery,
        now: this.#clock.now(),
        entries: this.#sinks.length > 0,
        // Paced, the writer thread appends about half as fast (62k events/s against 110k
        // in bench/audit.ts): a log that is behind catches up at full speed.
        hurry: batch.inputs >= this.#batchSize || this.#queue.length >= this.#batchSize,
      });
    } catch (error) {
      this.#stats.writeErrors++;
      throw new VigilError('ERR_AUDIT_WRITE_FAILED', `audit batch of ${batch.inputs} events not written`, {
        status: 503,
        publicMessage: 'service unavailable',
        cause: error,
      });
    }
    // The batch is durable: only now does it count, and only now do sinks see it.
    this.#pending = undefined;
    this.#done += batch.inputs;
    this.#stats.batches++;
    this.#stats.appended += result.appended;
    if (result.checkpoint) this.#stats.checkpoints++;
    if (result.appended > 0) this.#stats.lastSeq = result.lastSeq;
    for (const [detector, count] of Object.entries(result.alerts))
      this.#stats.alerts[detector] = (this.#stats.alerts[detector] ?? 0) + count;
    for (const invalid of result.invalid) {
      this.#stats.invalid++;
      this.#logger.error(
        { err: { message: invalid.message }, kind: invalid.kind },
        'audit event cannot be encoded; recorded as an alert',
      );
    }
    const entries = result.entries;
    if (this.#sinks.length > 0 && entries !== undefined && entries.length > 0) {
      for (const sink of this.#sinks) this.#deliver(sink, entries);
    }
  }

  #deliver(sink: AuditSink, entries: readonly SinkEntry[]): void {
    const state = this.#sinkTails.get(sink);
    if (!state) return;
    if (state.backlog >= DEFAULT_SINK_BACKLOG) {
      this.#stats.sinkDropped += entries.length;
      return;
    }
    state.backlog++;
    state.tail = state.tail
      .then(() => sink.write(entries))
      .catch((error: unknown) => {
        this.#stats.sinkErrors++;
        this.#logger.warn({ err: error, sink: sink.name }, 'audit sink failed');
      })
      .finally(() => {
        state.backlog--;
      });
  }
}

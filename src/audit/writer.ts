import { VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import type { Store } from '../store/index.ts';
import { type Logger, silentLogger } from '../telemetry/index.ts';
import { type Appender, type AppendSummary, inThreadAppender, workerAppender } from './appender.ts';
import { eventIdSource, type PreparedEvent, prepareEvent } from './chain.ts';
import type { CheckpointSigner } from './checkpoint.ts';
import { DetectionPipeline, type Detector } from './detect.ts';
import type { AuditEvent, AuditRecord } from './events.ts';
import type { AuditSink, SinkEntry } from './sink.ts';

export const DEFAULT_BATCH_SIZE = 2000;
export const DEFAULT_FLUSH_INTERVAL_MS = 50;
export const DEFAULT_QUEUE_LIMIT = 100_000;
export const DEFAULT_CHECKPOINT_EVERY = 10_000;
/** Batches a slow sink may fall behind before further batches are dropped for it. */
export const DEFAULT_SINK_BACKLOG = 64;
/** How long close() waits for sinks to drain. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
/**
 * Events run through detectors and encoded per turn of the event loop. A batch of
 * thousands in one go would hold requests back for milliseconds; 128 take a fraction of one.
 */
const PREPARE_SLICE = 128;
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
   * a SQLite file), so hashing, inserts and fsync never hold the event loop. PostgreSQL
   * and `:memory:` are always written from this thread (pg is asynchronous I/O already).
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
  /** Resolves once every event enqueued before the call is committed; rejects if a write fails. */
  flush(): Promise<void>;
  /** Flushes, stops the timer, drains sinks (bounded wait) and closes them. Does not close the store. */
  close(): Promise<void>;
  readonly stats: Readonly<AuditLogStats>;
  /** The store written to, for queries and the admin API. */
  readonly store: Store;
}

interface PendingBatch {
  events: PreparedEvent[];
  /** The events as records are built only when a sink needs them. */
  sources: AuditEvent[];
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
  readonly #pipeline: DetectionPipeline;
  readonly #logger: Logger;
  readonly #nextId: () => string;
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
  #queue: AuditEvent[] = [];
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
    this.#flushIntervalMs = positive('flushIntervalMs', options.flushIntervalMs, DEFAULT_FLUSH_INTERVAL_MS);
    this.#queueLimit = positive('queueLimit', options.queueLimit, DEFAULT_QUEUE_LIMIT);
    if (options.onFull !== undefined && options.onFull !== 'fail-closed' && options.onFull !== 'shed') {
      throw new TypeError('onFull must be fail-closed or shed');
    }
    this.#failClosed = options.onFull !== 'shed';
    const signer: CheckpointSigner | undefined = options.signer;
    this.#appender =
      store.dialect === 'sqlite' && store.file !== undefined && options.worker !== false
        ? workerAppender(store.file, signer)
        : inThreadAppender(store, signer);
    this.#checkpointEvery = positive('checkpointEvery', options.checkpointEvery, DEFAULT_CHECKPOINT_EVERY);
    this.#sinks = options.sinks ?? [];
    this.#pipeline = new DetectionPipeline(options.detectors ?? [], { dedupeMs: options.alertDedupeMs });
    this.#logger = options.logger ?? silentLogger();
    this.#nextId = eventIdSource(this.#clock.now());
    for (const sink of this.#sinks) this.#sinkTails.set(sink, { tail: Promise.resolve(), backlog: 0 });
  }

  get store(): Store {
    return this.#store;
  }

  get stats(): Readonly<AuditLogStats> {
    return { ...this.#stats, queued: this.#queue.length, alerts: { ...this.#stats.alerts } };
  }

  enqueue(event: AuditEvent): boolean {
    if (this.#closed) {
      this.#stats.dropped++;
      return false;
    }
    if (this.#queue.length >= this.#queueLimit) {
      this.#stats.dropped++;
      return !this.#failClosed;
    }
    this.#queue.push(event);
    this.#stats.accepted++;
    // At most one timer call per batch: the hot path must not churn timers.
    if (this.#timer === undefined) {
      this.#schedule(this.#queue.length >= this.#batchSize ? 0 : this.#flushIntervalMs);
    } else if (
      this.#queue.length === this.#batchSize &&
      !this.#timerImmediate &&
      this.#inflight === undefined
    ) {
      this.#schedule(0);
    }
    return true;
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
          if (this.#queue.length > 0 || this.#pending) {
            this.#schedule(this.#queue.length >= this.#batchSize ? 0 : this.#flushIntervalMs);
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
      if (this.#queue.length === 0) return;
      const taken =
        this.#queue.length <= this.#batchSize ? this.#queue : this.#queue.slice(0, this.#batchSize);
      this.#queue = taken === this.#queue ? [] : this.#queue.slice(this.#batchSize);
      this.#pending = await this.#prepare(taken);
    }
    const batch = this.#pending;
    let result: AppendSummary;
    try {
      result = await this.#appender.append({
        events: batch.events,
        checkpointEvery: this.#checkpointEvery,
        now: this.#clock.now(),
        hashes: this.#sinks.length > 0,
      });
    } catch (error) {
      this.#stats.writeErrors++;
      throw new VigilError(
        'ERR_AUDIT_WRITE_FAILED',
        `audit batch of ${batch.events.length} events not written`,
        {
          status: 503,
          publicMessage: 'service unavailable',
          cause: error,
        },
      );
    }
    // The batch is durable: only now does it count, and only now do sinks see it.
    this.#pending = undefined;
    this.#done += batch.inputs;
    this.#stats.batches++;
    this.#stats.appended += batch.events.length;
    if (result.checkpoint) this.#stats.checkpoints++;
    if (batch.events.length > 0) this.#stats.lastSeq = result.lastSeq;
    for (const source of batch.sources) {
      if (source.kind === 'alert')
        this.#stats.alerts[source.detector] = (this.#stats.alerts[source.detector] ?? 0) + 1;
    }
    const hashes = result.hashes;
    if (this.#sinks.length > 0 && hashes !== undefined && hashes.length > 0) {
      const entries: SinkEntry[] = hashes.map((hash, index) => ({
        record: {
          ...(batch.sources[index] as AuditEvent),
          seq: result.firstSeq + index,
          id: (batch.events[index] as PreparedEvent).id,
        } as AuditRecord,
        hash,
      }));
      for (const sink of this.#sinks) this.#deliver(sink, entries);
    }
  }

  /**
   * Runs detectors and encodes each event; off the request path, once per event even if
   * the write is retried, in slices so that requests are served in between.
   */
  async #prepare(taken: readonly AuditEvent[]): Promise<PendingBatch> {
    const events: PreparedEvent[] = [];
    const sources: AuditEvent[] = [];
    const add = (event: AuditEvent) => {
      events.push(prepareEvent(event, this.#nextId()));
      sources.push(event);
    };
    for (let index = 0; index < taken.length; index++) {
      if (index > 0 && index % PREPARE_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      const original = taken[index] as AuditEvent;
      try {
        const { event, alerts } = this.#pipeline.process(original);
        add(event);
        for (const alert of alerts) add(alert);
      } catch (error) {
        // A caller bug must not leave a hole where a decision should be: the chain gets
        // an alert in the event's place, carrying what can safely be said about it.
        this.#stats.invalid++;
        this.#logger.error(
          { err: error, kind: original?.kind },
          'audit event cannot be encoded; recorded as an alert',
        );
        const requestId = (original as { requestId?: unknown } | undefined)?.requestId;
        add({
          kind: 'alert',
          time:
            Number.isSafeInteger(original?.time) && original.time >= 0 ? original.time : this.#clock.now(),
          detector: 'audit-writer',
          key: 'unencodable-event',
          severity: 'medium',
          summary: `a ${String(original?.kind).slice(0, 32)} event could not be encoded: ${(error as Error).message.slice(0, 200)}`,
          risk: [],
          ...(typeof requestId === 'string' && requestId.length <= 512 ? { evidence: [requestId] } : {}),
        });
      }
    }
    return { events, sources, inputs: taken.length };
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

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { z } from 'zod';

/** What changed; subscribers keep their in-memory state current from these. */
export type ChangeChannel =
  | 'session'
  | 'device'
  | 'posture'
  | 'policy'
  | 'key'
  | 'revocation'
  | 'peer'
  | 'config';

const CHANNELS = ['session', 'device', 'posture', 'policy', 'key', 'revocation', 'peer', 'config'] as const;

export interface ChangeEvent {
  channel: ChangeChannel;
  /** What happened: created, updated, revoked, deleted … */
  action: string;
  /** Id of the changed row; subscribers look the row up, events stay small. */
  id?: string;
  data?: Record<string, unknown>;
  /** Replica that published the event. */
  origin: string;
  at: number;
}

export type ChangeInput = Pick<ChangeEvent, 'channel' | 'action' | 'id' | 'data'>;

export interface ChangeFeed {
  /** Id of this process in the feed (events it publishes carry it as `origin`). */
  readonly origin: string;
  /** Delivers to this process at once and to other replicas through the database. */
  publish(change: ChangeInput): Promise<void>;
  subscribe(channel: ChangeChannel | '*', handler: (event: ChangeEvent) => void): () => void;
  /**
   * Called after the feed lost its connection and got it back: events may have been
   * missed, so subscribers reload their state from the store.
   */
  onResync(handler: () => void): () => void;
  close(): Promise<void>;
}

/** PostgreSQL NOTIFY payloads are limited to 8000 bytes. */
const MAX_PAYLOAD_BYTES = 7900;

const wireEvent = z.strictObject({
  channel: z.enum(CHANNELS),
  action: z.string().max(64),
  id: z.string().max(256).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  origin: z.string().max(64),
  at: z.number(),
});

class LocalDispatch {
  readonly origin = randomUUID();
  protected readonly emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  subscribe(channel: ChangeChannel | '*', handler: (event: ChangeEvent) => void): () => void {
    this.emitter.on(channel, handler);
    return () => this.emitter.off(channel, handler);
  }

  onResync(handler: () => void): () => void {
    this.emitter.on('resync', handler);
    return () => this.emitter.off('resync', handler);
  }

  protected dispatch(event: ChangeEvent): void {
    // One subscriber's failure must not keep the others from learning of a revocation.
    for (const name of [event.channel, '*']) {
      for (const listener of this.emitter.listeners(name)) {
        try {
          (listener as (event: ChangeEvent) => void)(event);
        } catch (error) {
          this.emitter.emit('subscriber-error', error, event);
        }
      }
    }
  }

  protected event(change: ChangeInput): ChangeEvent {
    return { ...change, origin: this.origin, at: Date.now() };
  }
}

/** SQLite serves one process, so its feed is in-process events. */
export class InProcessChangeFeed extends LocalDispatch implements ChangeFeed {
  async publish(change: ChangeInput): Promise<void> {
    this.dispatch(this.event(change));
  }
  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

/**
 * PostgreSQL LISTEN/NOTIFY. One dedicated connection listens; publishing goes through
 * the pool. A lost listener reconnects with backoff and then asks for a resync.
 */
export class PostgresChangeFeed extends LocalDispatch implements ChangeFeed {
  readonly #pool: pg.Pool;
  readonly #clientConfig: pg.ClientConfig;
  readonly #channel: string;
  #listener: pg.Client | undefined;
  #closed = false;
  #reconnectDelay = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | undefined;

  constructor(pool: pg.Pool, clientConfig: pg.ClientConfig, schema: string | undefined) {
    super();
    this.#pool = pool;
    this.#clientConfig = clientConfig;
    // One channel per schema, so that test runs and tenants sharing a server stay apart.
    this.#channel = `vigil_changes_${schema ?? 'public'}`;
  }

  /** Connects the listener; resolves once LISTEN is in place. */
  async start(): Promise<void> {
    await this.#connect();
  }

  async publish(change: ChangeInput): Promise<void> {
    const event = this.event(change);
    const payload = JSON.stringify(event);
    if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
      throw new RangeError(`change event too large for NOTIFY (${Buffer.byteLength(payload)} bytes)`);
    }
    this.dispatch(event);
    await this.#pool.query('select pg_notify($1, $2)', [this.#channel, payload]);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => {});
    this.emitter.removeAllListeners();
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#clientConfig);
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (message) => {
      if (message.channel !== this.#channel || message.payload === undefined) return;
      this.#receive(message.payload);
    });
    await client.connect();
    await client.query(`listen ${this.#channel}`);
    this.#listener = client;
    this.#reconnectDelay = RECONNECT_MIN_MS;
  }

  #receive(payload: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    const result = wireEvent.safeParse(parsed);
    if (!result.success || result.data.origin === this.origin) return;
    this.dispatch(result.data as ChangeEvent);
  }

  #lost(client: pg.Client): void {
    if (this.#closed || this.#listener !== client) return;
    this.#listener = undefined;
    client.end().catch(() => {});
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MAX_MS);
    this.#reconnectTimer = setTimeout(() => {
      this.#connect().then(
        () => this.emitter.emit('resync'),
        () => this.#scheduleReconnect(),
      );
    }, delay);
    this.#reconnectTimer.unref();
  }
}

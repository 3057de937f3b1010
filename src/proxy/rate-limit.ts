import type { Redis } from 'ioredis';
import { type Clock, systemClock } from '../internal/clock.ts';

/**
 * Counts events per key in fixed windows. `hit` is synchronous: the request path never
 * waits for a network round trip, even when the counts are shared through Redis.
 */
export interface WindowCounter {
  /** Counts one event for `key` and returns the count in the current window, this one included. */
  hit(key: string): number;
  /** The count in the current window without counting. */
  peek(key: string): number;
  close(): Promise<void>;
}

/** Keys held at most; beyond it, windows that ended are dropped first, then everything. */
const MAX_KEYS = 100_000;

interface Slot {
  window: number;
  count: number;
}

/** Counts in this process only (the default, and what one replica needs). */
export class MemoryWindowCounter implements WindowCounter {
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #slots = new Map<string, Slot>();

  constructor(windowMs: number, clock: Clock = systemClock) {
    if (!(windowMs > 0)) throw new TypeError('windowMs must be positive');
    this.#windowMs = windowMs;
    this.#clock = clock;
  }

  protected window(): number {
    return Math.floor(this.#clock.now() / this.#windowMs);
  }

  hit(key: string): number {
    const window = this.window();
    const slot = this.#slots.get(key);
    if (slot !== undefined && slot.window === window) return ++slot.count;
    if (this.#slots.size >= MAX_KEYS) this.#evict(window);
    this.#slots.set(key, { window, count: 1 });
    return 1;
  }

  peek(key: string): number {
    const slot = this.#slots.get(key);
    return slot !== undefined && slot.window === this.window() ? slot.count : 0;
  }

  #evict(window: number): void {
    for (const [key, slot] of this.#slots) if (slot.window !== window) this.#slots.delete(key);
    if (this.#slots.size >= MAX_KEYS) this.#slots.clear();
  }

  async close(): Promise<void> {
    this.#slots.clear();
  }
}

export const DEFAULT_SYNC_MS = 100;

/** SSCAN replies read when loading the keys that reached `announceAt`; each asks for this many. */
const LOAD_CALLS = 1_000;
const LOAD_COUNT = 1_000;

/** Longest key an announcement may carry; longer ones are dropped. */
const MAX_ANNOUNCED_KEY = 1_024;

export interface RedisWindowCounterOptions {
  /** Prefix of every Redis key and of the announcement channel; one per counter. */
  prefix: string;
  windowMs: number;
  /** How often this replica pushes its counts and learns the totals. */
  syncMs?: number;
  /**
   * A key whose count reaches this in a window is announced to every replica at once
   * (published on `<prefix>:reached` and added to the set `<prefix>:reached:<window>`,
   * which expires after the window), and `peek` reports at least this count for it on
   * any replica, whether or not that replica ever saw the key. What a lockout needs: it
   * is only ever peeked at on the replica that must refuse. 0 (the default): off.
   */
  announceAt?: number;
  /** Told when the announcement subscriber's connection or subscription fails. */
  onError?: (error: unknown) => void;
  clock?: Clock;
}

/**
 * Counts shared by every replica through Redis. Each replica counts locally and, every
 * `syncMs`, adds its new events to Redis (INCRBY on a key per window, expiring with it)
 * and learns the total from the reply. A key's count is that total plus what this
 * replica counted since: a replica learns the others' events at its next sync after an
 * event of its own, so past a limit it lets through at most one sync interval of its own
 * requests. Only the keys hit in the interval go to Redis: no round trip per key it merely
 * remembers. A key this replica never hit counts 0 here unless `announceAt` is set and the
 * key reached it: every replica learns that from a pub/sub message (on a second
 * connection), and on connecting and reconnecting from the window's set in Redis. If
 * Redis is unreachable the local counts still apply: limits never open wider than one
 * replica's view, and announcements wait for the connection to come back.
 */
export class RedisWindowCounter implements WindowCounter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #announceAt: number;
  readonly #channel: string;
  readonly #subscriber: Redis | undefined;
  readonly #pending = new Map<string, number>();
  readonly #totals = new Map<string, Slot>();
  /** Keys that reached `announceAt`, by the window they reached it in. */
  readonly #reached = new Map<string, number>();
  /** Keys this replica saw reach `announceAt` and has yet to announce. */
  readonly #outbox = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  #syncing: Promise<void> | undefined;
  /** Set when the subscriber (re)subscribes: lockouts announced meanwhile are loaded. */
  #reload = false;
  #closed = false;
  #window = -1;

  constructor(redis: Redis, options: RedisWindowCounterOptions) {
    const { announceAt = 0, syncMs = DEFAULT_SYNC_MS } = options;
    if (!(options.windowMs > 0)) throw new TypeError('windowMs must be positive');
    if (!(syncMs > 0)) throw new TypeError('syncMs must be positive');
    if (!Number.isInteger(announceAt) || announceAt < 0) {
      throw new TypeError('announceAt must be a non-negative integer');
    }
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#windowMs = options.windowMs;
    this.#clock = options.clock ?? systemClock;
    this.#announceAt = announceAt;
    this.#channel = `${options.prefix}:reached`;
    if (announceAt > 0) this.#subscriber = this.#subscribe(options.onError ?? (() => {}));
    this.#timer = setInterval(() => void this.sync(), syncMs);
    this.#timer.unref();
  }

  #subscribe(onError: (error: unknown) => void): Redis {
    // Its own connection: a subscribed RESP2 connection takes no other commands.
    // Subscribing on every 'ready' (not ioredis's resubscribe) tells when to load what
    // was announced while this replica was away.
    const subscriber = this.#redis.duplicate({ lazyConnect: false, autoResubscribe: false });
    subscriber.on('error', onError);
    subscriber.on('ready', () => {
      if (this.#closed) return;
      subscriber.subscribe(this.#channel).then(() => {
        this.#reload = true;
        void this.sync();
      }, onError);
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#onAnnouncement(message);
    });
    return subscriber;
  }

  #onAnnouncement(message: string): void {
    const colon = message.indexOf(':');
    const window = Number(message.slice(0, colon));
    const key = message.slice(colon + 1);
    if (colon < 1 || !Number.isSafeInteger(window) || key.length > MAX_ANNOUNCED_KEY) return;
    const current = this.#currentWindow();
    // The next window too: the announcing replica's clock may be slightly ahead.
    if (window === current || window === current + 1) this.#markReached(key, window);
  }

  #currentWindow(): number {
    const window = Math.floor(this.#clock.now() / this.#windowMs);
    if (window !== this.#window) {
      this.#window = window;
      this.#pending.clear();
      this.#outbox.clear();
      for (const [key, slot] of this.#totals) if (slot.window !== window) this.#totals.delete(key);
      for (const [key, reached] of this.#reached) if (reached < window) this.#reached.delete(key);
    }
    return window;
  }

  /** The count as this replica knows it: total, own events since, and announcements. */
  #count(key: string, window: number, pending: number): number {
    const total = this.#totals.get(key);
    const count = (total !== undefined && total.window === window ? total.count : 0) + pending;
    if (this.#announceAt === 0) return count;
    if (this.#reached.get(key) === window) return Math.max(count, this.#announceAt);
    if (count >= this.#announceAt) {
      this.#markReached(key, window);
      if (this.#outbox.size < MAX_KEYS) this.#outbox.add(key);
    }
    return count;
  }

  #markReached(key: string, window: number): void {
    if (this.#reached.get(key) === window) return;
    // Bounded: past MAX_KEYS the oldest is forgotten here (its count still applies where seen).
    if (!this.#reached.has(key) && this.#reached.size >= MAX_KEYS) {
      const oldest = this.#reached.keys().next();
      if (oldest.done !== true) this.#reached.delete(oldest.value);
    }
    this.#reached.set(key, window);
  }

  #setTotal(key: string, window: number, count: number): void {
    if (!this.#totals.has(key) && this.#totals.size >= MAX_KEYS) {
      const oldest = this.#totals.keys().next();
      if (oldest.done !== true) this.#totals.delete(oldest.value);
    }
    this.#totals.set(key, { window, count });
    // Counting notes a key that reached announceAt only through other replicas' events.
    this.#count(key, window, this.#pending.get(key) ?? 0);
  }

  hit(key: string): number {
    const window = this.#currentWindow();
    const pending = (this.#pending.get(key) ?? 0) + 1;
    if (pending === 1 && this.#pending.size >= MAX_KEYS) this.#pending.clear();
    this.#pending.set(key, pending);
    return this.#count(key, window, pending);
  }

  peek(key: string): number {
    return this.#count(key, this.#currentWindow(), this.#pending.get(key) ?? 0);
  }

  /**
   * Pushes this replica's new events and learns their totals (one round trip), then
   * announces keys that reached `announceAt` and, after a (re)subscribe, loads those
   * announced meanwhile. Never rejects: what fails waits for the next sync.
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    await this.#pushCounts();
    if (this.#outbox.size > 0) await this.#announce();
    if (this.#reload) await this.#load();
  }

  async #pushCounts(): Promise<void> {
    const window = this.#currentWindow();
    const batch = [...this.#pending];
    this.#pending.clear();
    if (batch.length === 0) return;
    const ttlMs = this.#windowMs * 2;
    const pipeline = this.#redis.pipeline();
    for (const [key, count] of batch) {
      const redisKey = `${this.#prefix}:${window}:${key}`;
      pipeline.incrby(redisKey, count);
      pipeline.pexpire(redisKey, ttlMs);
    }
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch {
      results = null;
    }
    if (results === null || window !== this.#window) {
      // Not delivered: count them again next time, so no event is lost.
      if (window === this.#window)
        for (const [key, count] of batch) this.#pending.set(key, (this.#pending.get(key) ?? 0) + count);
      return;
    }
    batch.forEach(([key, count], index) => {
      const [error, value] = results[index * 2] ?? [new Error('no reply'), null];
      if (error === null) this.#setTotal(key, window, Number(value));
      else this.#pending.set(key, (this.#pending.get(key) ?? 0) + count);
    });
  }

  /** Records the keys in the window's set, then publishes them; what fails stays queued. */
  async #announce(): Promise<void> {
    const window = this.#currentWindow();
    const keys = [...this.#outbox];
    this.#outbox.clear();
    const setKey = `${this.#channel}:${window}`;
    // The set lives past the window's end (by this clock) by one more window, like the counts.
    const ttlMs = (window + 2) * this.#windowMs - this.#clock.now();
    const pipeline = this.#redis.pipeline();
    pipeline.sadd(setKey, ...keys);
    pipeline.pexpire(setKey, ttlMs);
    for (const key of keys) pipeline.publish(this.#channel, `${window}:${key}`);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch {
      results = null;
    }
    if (window !== this.#window) return;
    const stored = results?.[0]?.[0] === null;
    keys.forEach((key, index) => {
      if (!stored || results?.[2 + index]?.[0] !== null) this.#outbox.add(key);
    });
  }

  /** Loads the keys that reached `announceAt` in this window, bounded, after a (re)subscribe. */
  async #load(): Promise<void> {
    this.#reload = false;
    const window = this.#currentWindow();
    const setKey = `${this.#channel}:${window}`;
    let cursor = '0';
    let loaded = 0;
    try {
      for (let call = 0; call < LOAD_CALLS && loaded < MAX_KEYS; call++) {
        const [next, keys] = await this.#redis.sscan(setKey, cursor, 'COUNT', LOAD_COUNT);
        if (window !== this.#window) return;
        for (const key of keys) if (key.length <= MAX_ANNOUNCED_KEY) this.#markReached(key, window);
        loaded += keys.length;
        cursor = next;
        if (cursor === '0') return;
      }
    } catch {
      // Redis went away again: the next subscribe loads once more.
      this.#reload = this.#subscriber?.status === 'ready';
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.sync().catch(() => {});
    this.#subscriber?.disconnect();
  }
}

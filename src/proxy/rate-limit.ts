import type { Redis } from 'ioredis';
import { type Clock, systemClock } from '../internal/clock.ts';

/**
 * Counts events per key in fixed windows. `hit` is synchronous: the request path never
 * waits for a network round trip, even when the counts are shared through Redis.
 */
export interface WindowCounter {
  /** Counts one event for `key` and returns the count in the current window, this one included. */
  hit(key: string): number;
  /** The count in the current window without counting; at least `lockAt` while the key is locked. */
  peek(key: string): number;
  /** The count that locks a key for a whole window; 0: none. */
  readonly lockAt: number;
  close(): Promise<void>;
}

/** Keys held at most; beyond it, windows that ended are dropped first, then everything. */
const MAX_KEYS = 100_000;

interface Slot {
  window: number;
  count: number;
}

function checkLockAt(lockAt: number): void {
  if (!Number.isInteger(lockAt) || lockAt < 0) throw new TypeError('lockAt must be a non-negative integer');
}

/**
 * Keys locked until a time (ms since the epoch): a lockout's check on the request path is
 * one map lookup. Bounded: past MAX_KEYS the oldest lock is dropped.
 */
class Locks {
  readonly #until = new Map<string, number>();

  /** Whether `key` is locked at `now`; a lock that ended is dropped. */
  holds(key: string, now: number): boolean {
    const until = this.#until.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(key);
    return false;
  }

  /** Locks `key` until `until`, unless it already is until then or later. */
  lock(key: string, until: number, now: number): void {
    const current = this.#until.get(key);
    if (current !== undefined && current >= until) return;
    // Re-inserted, so the map stays in the order locks were made: with one duration for
    // all, nearly the order in which they end, and the ended ones are found at the front.
    this.#until.delete(key);
    for (const [locked, end] of this.#until) {
      if (end > now) break;
      this.#until.delete(locked);
    }
    if (this.#until.size >= MAX_KEYS) {
      const oldest = this.#until.keys().next();
      if (oldest.done !== true) this.#until.delete(oldest.value);
    }
    this.#until.set(key, until);
  }

  clear(): void {
    this.#until.clear();
  }
}

/**
 * Counts in this process only (the default, and what one replica needs). With `lockAt`, a
 * key whose count reaches it is locked for `windowMs` from that moment: `peek` reports at
 * least `lockAt` for it until then, past the end of the window it was counted in.
 */
export class MemoryWindowCounter implements WindowCounter {
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #lockAt: number;

  get lockAt(): number {
    return this.#lockAt;
  }
  readonly #slots = new Map<string, Slot>();
  readonly #locks = new Locks();

  constructor(windowMs: number, clock: Clock = systemClock, options: { lockAt?: number } = {}) {
    const { lockAt = 0 } = options;
    if (!(windowMs > 0)) throw new TypeError('windowMs must be positive');
    checkLockAt(lockAt);
    this.#windowMs = windowMs;
    this.#clock = clock;
    this.#lockAt = lockAt;
  }

  protected window(): number {
    return Math.floor(this.#clock.now() / this.#windowMs);
  }

  hit(key: string): number {
    const window = this.window();
    const slot = this.#slots.get(key);
    if (slot !== undefined && slot.window === window) return this.#locked(key, ++slot.count);
    if (this.#slots.size >= MAX_KEYS) this.#evict(window);
    this.#slots.set(key, { window, count: 1 });
    return this.#locked(key, 1);
  }

  peek(key: string): number {
    const slot = this.#slots.get(key);
    return this.#locked(key, slot !== undefined && slot.window === this.window() ? slot.count : 0);
  }

  /** The count, or `lockAt` while the key is locked; locks a key whose count reaches it. */
  #locked(key: string, count: number): number {
    if (this.#lockAt === 0) return count;
    const now = this.#clock.now();
    if (this.#locks.holds(key, now)) return Math.max(count, this.#lockAt);
    if (count >= this.#lockAt) this.#locks.lock(key, now + this.#windowMs, now);
    return count;
  }

  #evict(window: number): void {
    for (const [key, slot] of this.#slots) if (slot.window !== window) this.#slots.delete(key);
    if (this.#slots.size >= MAX_KEYS) this.#slots.clear();
  }

  async close(): Promise<void> {
    this.#slots.clear();
    this.#locks.clear();
  }
}

export const DEFAULT_SYNC_MS = 100;

/** ZSCAN replies read when loading the locks, after a (re)subscribe; each asks for this many. */
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
   * A key whose count reaches this is locked for `windowMs` from that moment, on every
   * replica: `peek` reports at least this count for it until then, past the end of the
   * window it was counted in, whether or not that replica ever saw the key. The lock's
   * end is published on `<prefix>:locked` and kept in the sorted set
   * `<prefix>:locked-until` (scored by it; ended locks are removed, at most MAX_KEYS
   * kept) for replicas that connect later. What a lockout needs: it is only ever peeked
   * at on the replica that must refuse. 0 (the default): off.
   */
  lockAt?: number;
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
 * remembers. A key this replica never hit counts 0 here unless `lockAt` is set and the key
 * is locked: every replica learns a lock and its end from a pub/sub message (on a second
 * connection), and on connecting and reconnecting from the sorted set in Redis. If Redis
 * is unreachable the local counts and locks still apply: limits never open wider than one
 * replica's view, and announcements wait for the connection to come back.
 */
export class RedisWindowCounter implements WindowCounter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #lockAt: number;

  get lockAt(): number {
    return this.#lockAt;
  }
  readonly #channel: string;
  readonly #lockSet: string;
  readonly #subscriber: Redis | undefined;
  readonly #pending = new Map<string, number>();
  readonly #totals = new Map<string, Slot>();
  /** Keys locked on this replica, by this replica's count or another's announcement. */
  readonly #locks = new Locks();
  /** Locks this replica made and has yet to announce, with their end. */
  readonly #outbox = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #syncing: Promise<void> | undefined;
  /** Set when the subscriber (re)subscribes: locks announced meanwhile are loaded. */
  #reload = false;
  #closed = false;
  #window = -1;

  constructor(redis: Redis, options: RedisWindowCounterOptions) {
    const { lockAt = 0, syncMs = DEFAULT_SYNC_MS } = options;
    if (!(options.windowMs > 0)) throw new TypeError('windowMs must be positive');
    if (!(syncMs > 0)) throw new TypeError('syncMs must be positive');
    checkLockAt(lockAt);
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#windowMs = options.windowMs;
    this.#clock = options.clock ?? systemClock;
    this.#lockAt = lockAt;
    this.#channel = `${options.prefix}:locked`;
    this.#lockSet = `${options.prefix}:locked-until`;
    if (lockAt > 0) this.#subscriber = this.#subscribe(options.onError ?? (() => {}));
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

  /** `<end in ms>:<key>`, as #announce publishes it. */
  #onAnnouncement(message: string): void {
    const colon = message.indexOf(':');
    const until = Number(message.slice(0, colon));
    const key = message.slice(colon + 1);
    if (colon < 1 || !Number.isSafeInteger(until) || key.length > MAX_ANNOUNCED_KEY) return;
    this.#adopt(key, until);
  }

  /** Holds a lock another replica made, to its end, but never longer than `windowMs` from now. */
  #adopt(key: string, until: number): void {
    const now = this.#clock.now();
    // The announcing replica's clock may run ahead of this one: a lock still lasts one
    // window at most here, and a wrong clock cannot lock a source out for good.
    if (until > now) this.#locks.lock(key, Math.min(until, now + this.#windowMs), now);
  }

  #currentWindow(): number {
    const window = Math.floor(this.#clock.now() / this.#windowMs);
    if (window !== this.#window) {
      this.#window = window;
      this.#pending.clear();
      for (const [key, slot] of this.#totals) if (slot.window !== window) this.#totals.delete(key);
    }
    return window;
  }

  /** The count as this replica knows it: total and own events since, or `lockAt` while locked. */
  #count(key: string, window: number, pending: number): number {
    const total = this.#totals.get(key);
    const count = (total !== undefined && total.window === window ? total.count : 0) + pending;
    if (this.#lockAt === 0) return count;
    const now = this.#clock.now();
    if (this.#locks.holds(key, now)) return Math.max(count, this.#lockAt);
    if (count >= this.#lockAt) {
      const until = now + this.#windowMs;
      this.#locks.lock(key, until, now);
      if (this.#outbox.size < MAX_KEYS) this.#outbox.set(key, until);
    }
    return count;
  }

  #setTotal(key: string, window: number, count: number): void {
    if (!this.#totals.has(key) && this.#totals.size >= MAX_KEYS) {
      const oldest = this.#totals.keys().next();
      if (oldest.done !== true) this.#totals.delete(oldest.value);
    }
    this.#totals.set(key, { window, count });
    // Counting locks a key that reached lockAt only through other replicas' events.
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
   * announces the locks it made and, after a (re)subscribe, loads those announced
   * meanwhile. Never rejects: what fails waits for the next sync.
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

  /** Records the locks in the sorted set, then publishes them; what fails stays queued. */
  async #announce(): Promise<void> {
    const now = this.#clock.now();
    const locks = [...this.#outbox].filter(([, until]) => until > now);
    this.#outbox.clear();
    if (locks.length === 0) return;
    const pipeline = this.#redis.pipeline();
    // GT: a later end another replica recorded for the same key stays.
    pipeline.zadd(this.#lockSet, 'GT', ...locks.flatMap(([key, until]) => [until, key]));
    pipeline.zremrangebyscore(this.#lockSet, '-inf', now);
    // Bounded like the local map: beyond MAX_KEYS, the locks that end first go.
    pipeline.zremrangebyrank(this.#lockSet, 0, -MAX_KEYS - 1);
    // Every lock in it ends within one window; the set goes when no lock is made for two.
    pipeline.pexpire(this.#lockSet, this.#windowMs * 2);
    for (const [key, until] of locks) pipeline.publish(this.#channel, `${until}:${key}`);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch {
      results = null;
    }
    const stored = results?.[0]?.[0] === null;
    locks.forEach(([key, until], index) => {
      if ((!stored || results?.[4 + index]?.[0] !== null) && !this.#outbox.has(key)) {
        this.#outbox.set(key, until);
      }
    });
  }

  /** Loads the locks that have yet to end, bounded, after a (re)subscribe. */
  async #load(): Promise<void> {
    this.#reload = false;
    let cursor = '0';
    let loaded = 0;
    try {
      for (let call = 0; call < LOAD_CALLS && loaded < MAX_KEYS; call++) {
        const [next, reply] = await this.#redis.zscan(this.#lockSet, cursor, 'COUNT', LOAD_COUNT);
        // Member, score, member, score…: the ended ones are skipped here.
        for (let index = 0; index + 1 < reply.length; index += 2) {
          const key = reply[index] ?? '';
          const until = Number(reply[index + 1]);
          if (key.length <= MAX_ANNOUNCED_KEY && Number.isSafeInteger(until)) this.#adopt(key, until);
        }
        loaded += reply.length / 2;
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

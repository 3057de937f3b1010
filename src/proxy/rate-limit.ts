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

/**
 * Counts shared by every replica through Redis. Each replica counts locally and, every
 * `syncMs`, adds its new events to Redis (INCRBY on a key per window, expiring with it)
 * and learns the total. A key's count is the last known total plus what this replica
 * counted since — so replicas agree within one sync interval. If Redis is unreachable
 * the local counts still apply: limits never open wider than one replica's view.
 */
export class RedisWindowCounter implements WindowCounter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #pending = new Map<string, number>();
  readonly #totals = new Map<string, Slot>();
  readonly #timer: NodeJS.Timeout;
  #syncing: Promise<void> | undefined;
  #window = -1;

  constructor(redis: Redis, options: { prefix: string; windowMs: number; syncMs?: number; clock?: Clock }) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#windowMs = options.windowMs;
    this.#clock = options.clock ?? systemClock;
    this.#timer = setInterval(() => void this.sync(), options.syncMs ?? DEFAULT_SYNC_MS);
    this.#timer.unref();
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

  hit(key: string): number {
    const window = this.#currentWindow();
    const pending = (this.#pending.get(key) ?? 0) + 1;
    if (pending === 1 && this.#pending.size >= MAX_KEYS) this.#pending.clear();
    this.#pending.set(key, pending);
    const total = this.#totals.get(key);
    return (total !== undefined && total.window === window ? total.count : 0) + pending;
  }

  peek(key: string): number {
    const window = this.#currentWindow();
    const total = this.#totals.get(key);
    return (total !== undefined && total.window === window ? total.count : 0) + (this.#pending.get(key) ?? 0);
  }

  /** Pushes this replica's new events and pulls the totals; one round trip for all keys. */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const window = this.#currentWindow();
    const batch = [...this.#pending];
    this.#pending.clear();
    const watched = [...this.#totals.keys()].filter((key) => !this.#pending.has(key));
    if (batch.length === 0 && watched.length === 0) return;
    const ttlMs = this.#windowMs * 2;
    const pipeline = this.#redis.pipeline();
    for (const [key, count] of batch) {
      const redisKey = `${this.#prefix}:${window}:${key}`;
      pipeline.incrby(redisKey, count);
      pipeline.pexpire(redisKey, ttlMs);
    }
    for (const key of watched) pipeline.get(`${this.#prefix}:${window}:${key}`);
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
      if (error === null) this.#totals.set(key, { window, count: Number(value) });
      else this.#pending.set(key, (this.#pending.get(key) ?? 0) + count);
    });
    watched.forEach((key, index) => {
      const [error, value] = results[batch.length * 2 + index] ?? [null, null];
      if (error === null) this.#totals.set(key, { window, count: Number(value ?? 0) });
    });
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.sync().catch(() => {});
  }
}

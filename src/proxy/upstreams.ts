import { Pool } from 'undici';
import { type Clock, systemClock } from '../internal/clock.ts';

export interface UpstreamOptions {
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Keep-alive connections per upstream origin. */
  connections?: number;
  /** Extra CA certificates (PEM) for TLS upstreams with a private CA. */
  ca?: string;
  /** Path probed on every upstream each `healthIntervalMs`; no active checks when absent. */
  healthPath?: string;
  healthIntervalMs?: number;
  clock?: Clock;
  /** Send the client's Host header on instead of the upstream URL's host. */
  preserveHost?: boolean;
}

export interface Upstream {
  readonly url: string;
  readonly origin: string;
  /** Path of the upstream URL without a trailing slash, prefixed to every forwarded path. */
  readonly basePath: string;
  readonly pool: Pool;
  downUntil: number;
}

const DEFAULTS = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 30_000,
  bodyTimeoutMs: 60_000,
  connections: 64,
};
/** An upstream that failed to connect is skipped this long, unless all are down. */
export const UPSTREAM_DOWN_MS = 10_000;
export const DEFAULT_HEALTH_INTERVAL_MS = 5_000;
const HEALTH_TIMEOUT_MS = 2_000;

/**
 * The upstreams of one route, used round robin with keep-alive pools. Health is passive:
 * a connection failure takes an upstream out of rotation for a while.
 */
export class UpstreamGroup {
  readonly upstreams: readonly Upstream[];
  readonly preserveHost: boolean;
  readonly #clock: Clock;
  #next = 0;
  #healthTimer: NodeJS.Timeout | undefined;

  constructor(urls: readonly string[], options: UpstreamOptions = {}) {
    if (urls.length === 0) throw new TypeError('a route needs at least one upstream');
    this.preserveHost = options.preserveHost === true;
    this.#clock = options.clock ?? systemClock;
    this.upstreams = urls.map((url) => {
      const parsed = new URL(url);
      return {
        url,
        origin: parsed.origin,
        basePath: parsed.pathname.replace(/\/+$/, ''),
        downUntil: 0,
        pool: new Pool(parsed.origin, {
          connections: options.connections ?? DEFAULTS.connections,
          pipelining: 1,
          connectTimeout: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
          headersTimeout: options.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
          bodyTimeout: options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs,
          ...(options.ca && parsed.protocol === 'https:' ? { connect: { ca: options.ca } } : {}),
        }),
      };
    });
    if (options.healthPath !== undefined) {
      const path = options.healthPath;
      this.#healthTimer = setInterval(
        () => void this.checkHealth(path),
        options.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      );
      this.#healthTimer.unref();
    }
  }

  /**
   * Active health check: an upstream that does not answer `path` with a non-5xx status
   * in time is taken out of rotation until a later check passes.
   */
  async checkHealth(path: string): Promise<void> {
    await Promise.all(
      this.upstreams.map(async (upstream) => {
        try {
          const response = await upstream.pool.request({
            path: `${upstream.basePath}${path}`,
            method: 'GET',
            signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
          });
          await response.body.dump();
          if (response.statusCode >= 500) this.markDown(upstream);
          else upstream.downUntil = 0;
        } catch {
          this.markDown(upstream);
        }
      }),
    );
  }

  /** The next healthy upstream; when every one is down, the next one anyway. */
  pick(): Upstream {
    const count = this.upstreams.length;
    const now = this.#clock.now();
    for (let tried = 0; tried < count; tried++) {
      const upstream = this.upstreams[this.#next % count] as Upstream;
      this.#next = (this.#next + 1) % count;
      if (upstream.downUntil <= now) return upstream;
    }
    const fallback = this.upstreams[this.#next % count] as Upstream;
    this.#next = (this.#next + 1) % count;
    return fallback;
  }

  markDown(upstream: Upstream): void {
    upstream.downUntil = this.#clock.now() + UPSTREAM_DOWN_MS;
  }

  async close(): Promise<void> {
    clearInterval(this.#healthTimer);
    await Promise.all(this.upstreams.map((upstream) => upstream.pool.close()));
  }
}

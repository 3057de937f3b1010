import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import type { LoadedConfig } from '../config/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import {
  AccessLimiter,
  AccessProxy,
  type AssertionKeyRing,
  AssertionSigner,
  type Authenticator,
  MemoryWindowCounter,
  type ProxyDecisionRecord,
  RedisWindowCounter,
  UpstreamGroup,
  type WindowCounter,
} from '../proxy/index.ts';
import { Counter, HotHistogram, type Logger, type Registry } from '../telemetry/index.ts';

/** Decisions counted since the last scrape, for one label set. */
interface DecisionTally {
  child: Counter.Internal;
  count: number;
  /** In the list the next scrape adds up. */
  listed: boolean;
}

export interface ServingProxy {
  readonly proxy: AccessProxy;
  readonly signer: AssertionSigner;
  /** Rebuilds the upstream pools from a new config; the old pools close once idle. */
  reconfigure(config: LoadedConfig): void;
  close(): Promise<void>;
}

export interface ProxyWiring {
  authenticate: Authenticator;
  reserved: ReadonlyMap<string, (request: IncomingMessage, response: ServerResponse) => void>;
  /** Audit enqueue; false refuses the request (fail closed). */
  record?: (record: ProxyDecisionRecord) => boolean;
  /** Refuses requests on connections with a bad client certificate. */
  peerRefusal?: (request: IncomingMessage) => string | undefined;
}

function upstreamsOf(config: LoadedConfig): Map<string, UpstreamGroup> {
  return new Map(
    config.config.routes.map((route) => [
      route.name,
      new UpstreamGroup(route.to, {
        headersTimeoutMs: route.timeout,
        preserveHost: route.preserve_host,
        bodyTimeoutMs: route.idle_timeout,
        ...(route.tls_ca_file ? { ca: readFileSync(route.tls_ca_file, 'utf8') } : {}),
        ...(route.health_check
          ? { healthPath: route.health_check.path, healthIntervalMs: route.health_check.interval }
          : {}),
      }),
    ]),
  );
}

/** The proxy capability as the server runs it: policies, upstreams, assertions, metrics. */
export async function startProxy(
  loaded: LoadedConfig,
  options: {
    policies: PolicyStore;
    issuer: string;
    /** The assertion keys every replica shares through the store; they rotate themselves. */
    keys: AssertionKeyRing;
    logger: Logger;
    metrics: Registry;
    wiring: ProxyWiring;
  },
): Promise<ServingProxy> {
  const signer = new AssertionSigner({ issuer: options.issuer, keys: options.keys });
  // First: reading a route's CA file may fail, before anything that would need closing.
  let upstreams = upstreamsOf(loaded);

  // Compiled policies return shared frozen decisions, so each has its tally, found by the
  // decision itself: a request adds one to a number, and prom-client's labelled inc (a
  // label hash per call) runs when the metrics are scraped.
  const tallies = new WeakMap<ProxyDecisionRecord['decision'], DecisionTally>();
  let counted: DecisionTally[] = [];
  const decisions = new Counter({
    name: 'vigil_proxy_decisions_total',
    help: 'Proxy and forward-auth decisions by route, effect and mode',
    labelNames: ['route', 'effect', 'mode'],
    registers: [options.metrics],
    collect() {
      for (const tally of counted) {
        tally.child.inc(tally.count);
        tally.count = 0;
        tally.listed = false;
      }
      counted = [];
    },
  });
  const denialReasons = new Counter({
    name: 'vigil_proxy_denials_total',
    help: 'Denied decisions by route and reason (a decision may carry several reasons)',
    labelNames: ['route', 'reason'],
    registers: [options.metrics],
  });
  const latency = new HotHistogram({
    name: 'vigil_proxy_decision_seconds',
    help: 'Time to authenticate and decide one request, audit enqueue included',
    buckets: [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025],
    registers: [options.metrics],
  });
  const count = (record: ProxyDecisionRecord) => {
    let tally = tallies.get(record.decision);
    if (tally === undefined) {
      const child = decisions.labels(record.route ?? '(none)', record.decision.effect, record.decision.mode);
      tally = { child, count: 0, listed: false };
      tallies.set(record.decision, tally);
    }
    tally.count++;
    if (!tally.listed) {
      tally.listed = true;
      counted.push(tally);
    }
    latency.observe(record.latencyMs / 1000);
    if (record.decision.effect === 'deny') {
      for (const reason of record.decision.reasons)
        denialReasons.labels(record.route ?? '(none)', reason).inc();
    }
  };

  const limits = loaded.config.limits;
  const redisUrl = loaded.config.redis.url;
  const redis = redisUrl
    ? new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 })
    : undefined;
  // A dead Redis must not crash the proxy: limits fall back to this replica's counts.
  redis?.on('error', (error) =>
    options.logger.warn({ err: error }, 'redis unavailable; limits count locally'),
  );
  // A source that reaches lockAt is locked for a whole window from that moment (not to the
  // end of the fixed window that counted it), and announced to every replica at once, not
  // only to those that count denials from that source themselves.
  const counter = (name: string, windowMs: number, lockAt = 0): WindowCounter =>
    redis
      ? new RedisWindowCounter(redis, {
          prefix: `vigil:${name}`,
          windowMs,
          lockAt,
          onError: (error) =>
            options.logger.warn({ err: error }, 'redis unavailable; lockouts from other replicas wait'),
        })
      : new MemoryWindowCounter(windowMs, undefined, { lockAt });
  const limiter = new AccessLimiter(
    {
      requests: counter('requests', limits.window),
      denials: counter('denials', limits.lockout_window, limits.lockout_denials),
    },
    {
      perIdentity: limits.per_identity,
      perSource: limits.per_source,
      lockoutDenials: limits.lockout_denials,
    },
  );

  const record = options.wiring.record;
  const closeAll = async () => {
    await limiter.close();
    redis?.disconnect();
    await Promise.all([...upstreams.values()].map((group) => group.close()));
  };
  let proxy: AccessProxy;
  try {
    proxy = new AccessProxy({
      policies: () => options.policies.current,
      upstreams: () => upstreams,
      authenticate: options.wiring.authenticate,
      reserved: options.wiring.reserved,
      ...(options.wiring.peerRefusal ? { peerRefusal: options.wiring.peerRefusal } : {}),
      signer,
      sessionCookie: loaded.config.session.cookie_name,
      trustedProxies: loaded.config.server.trusted_proxies,
      maxBodyBytes: loaded.config.server.max_body_bytes,
      limiter,
      record: (entry) => {
        count(entry);
        return record === undefined ? true : record(entry);
      },
      onError: (error, requestId) =>
        options.logger.warn({ err: error, request_id: requestId }, 'proxy request failed'),
      onWarning: (message) => options.logger.warn(message),
    });
  } catch (error) {
    await closeAll();
    throw error;
  }

  return {
    proxy,
    signer,
    reconfigure(config) {
      const previous = upstreams;
      try {
        upstreams = upstreamsOf(config);
      } catch (error) {
        // A route's CA file unreadable: the routes as they were keep serving.
        options.logger.error({ err: error }, 'routes not reloaded; the previous ones keep serving');
        return;
      }
      for (const group of previous.values()) void group.close();
    },
    close: closeAll,
  };
}

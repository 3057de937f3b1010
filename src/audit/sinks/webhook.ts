import { createHmac } from 'node:crypto';
import { type Clock, systemClock } from '../../internal/clock.ts';
import { constantTimeEqual } from '../../internal/secrets.ts';
import type { AuditEventKind } from '../events.ts';
import type { AuditSink, SinkEntry } from '../sink.ts';

export const WEBHOOK_DEFAULTS = {
  timeoutMs: 5000,
  retries: 2,
  retryDelayMs: 500,
  maxEventsPerPost: 500,
} as const;
/** How far a receiver should accept the timestamp from its own clock (replay window). */
export const WEBHOOK_TOLERANCE_MS = 5 * 60_000;

export interface WebhookSinkOptions {
  url: string;
  /** HMAC-SHA256 key shared with the receiver. */
  secret: string | Uint8Array;
  /** Only these kinds are posted (e.g. `['alert']` for an alert hook); all when absent. */
  kinds?: readonly AuditEventKind[];
  name?: string;
  timeoutMs?: number;
  /** Further attempts after the first, for network errors, 429 and 5xx. */
  retries?: number;
  /** Base delay before a retry; doubles each time. */
  retryDelayMs?: number;
  maxEventsPerPost?: number;
  clock?: Clock;
}

/** `sha256=<hex>` over `<timestamp>.<body>`, the value of `X-Vigil-Signature`. */
export function webhookSignature(secret: string | Uint8Array, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * For receivers: true when `signature` is the HMAC of `timestamp.body` and the timestamp
 * (Unix seconds) is within `toleranceMs` of `now`. Compares in constant time.
 */
export function verifyWebhookSignature(
  secret: string | Uint8Array,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  now: number,
  toleranceMs = WEBHOOK_TOLERANCE_MS,
): boolean {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(now - Number(timestamp) * 1000) > toleranceMs) return false;
  return constantTimeEqual(webhookSignature(secret, timestamp, body), signature);
}

const retryable = (status: number) => status === 429 || status >= 500;

/**
 * Posts durable events as `{"events":[...]}` with `X-Vigil-Timestamp` (Unix seconds) and
 * `X-Vigil-Signature: sha256=<hex HMAC>`. Each attempt has its own timeout; attempts are
 * bounded; a post that still fails rejects (the writer counts and logs it).
 */
export function webhookSink(options: WebhookSinkOptions): AuditSink {
  const url = new URL(options.url);
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new TypeError('webhook url must be http(s)');
  const timeoutMs = options.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs;
  const retries = Math.min(options.retries ?? WEBHOOK_DEFAULTS.retries, 10);
  const retryDelayMs = options.retryDelayMs ?? WEBHOOK_DEFAULTS.retryDelayMs;
  const maxEvents = options.maxEventsPerPost ?? WEBHOOK_DEFAULTS.maxEventsPerPost;
  const clock = options.clock ?? systemClock;
  const kinds = options.kinds ? new Set<string>(options.kinds) : undefined;

  const post = async (body: string): Promise<void> => {
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, retryDelayMs * 2 ** (attempt - 1)));
      const timestamp = String(Math.floor(clock.now() / 1000));
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'vigil-audit',
            'x-vigil-timestamp': timestamp,
            'x-vigil-signature': webhookSignature(options.secret, timestamp, body),
          },
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body?.cancel().catch(() => {});
        if (response.ok) return;
        lastError = new Error(`webhook ${url.host} answered ${response.status}`);
        if (!retryable(response.status)) break;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  };

  return {
    name: options.name ?? `webhook:${url.host}`,
    async write(entries: readonly SinkEntry[]) {
      const records = kinds ? entries.filter((entry) => kinds.has(entry.record.kind)) : entries;
      for (let start = 0; start < records.length; start += maxEvents) {
        const events = records
          .slice(start, start + maxEvents)
          .map((entry) => ({ ...entry.record, hash: entry.hash }));
        await post(JSON.stringify({ events }));
      }
    },
  };
}

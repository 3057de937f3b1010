import { isVigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import type { ApiRoute } from '../internal/http.ts';
import type { Store } from '../store/index.ts';
import { parseAuditQuery, queryEvents } from './query.ts';

/** Query parameters the events route accepts; anything else is a 400, not silently ignored. */
const PARAMETERS = new Set([
  'kind',
  'user',
  'device',
  'route',
  'session',
  'sourceIp',
  'decision',
  'reason',
  'risk',
  'since',
  'until',
  'after',
  'before',
  'limit',
  'order',
]);

/**
 * Admin API routes of the audit log, for the server to mount:
 * `GET /api/v1/audit/events?user=&device=&route=&decision=&reason=&risk=&since=24h&until=&limit=&before=`
 * answers `{ events, next }`; pass `next` back as `before` (or `after` with `order=asc`).
 */
export function auditApiRoutes(log: { readonly store: Store }, options: { clock?: Clock } = {}): ApiRoute[] {
  const clock = options.clock ?? systemClock;
  return [
    {
      method: 'GET',
      path: '/api/v1/audit/events',
      summary:
        'Audit events, newest first, filtered by user, device, route, decision, reason, risk flag and time',
      async handler(request) {
        const params: Record<string, string> = {};
        let count = 0;
        for (const [key, value] of request.query) {
          if (++count > 32 || !PARAMETERS.has(key)) {
            return {
              status: 400,
              body: {
                error: 'ERR_AUDIT_QUERY_INVALID',
                message: `unknown query parameter ${key.slice(0, 64)}`,
              },
            };
          }
          params[key] = value;
        }
        try {
          const query = parseAuditQuery(params, clock.now());
          const page = await queryEvents(log.store, query);
          return { status: 200, body: page };
        } catch (error) {
          if (isVigilError(error, 'ERR_AUDIT_QUERY_INVALID')) {
            return { status: 400, body: { error: error.code, message: error.publicMessage } };
          }
          throw error;
        }
      },
    },
  ];
}

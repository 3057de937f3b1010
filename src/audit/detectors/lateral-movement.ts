import { builtInDetector, type Detector } from '../detect.ts';

export interface LateralMovementOptions {
  /** Alert when one identity reaches more than this many distinct routes in the window. */
  maxRoutes?: number;
  /** Alert when one identity is denied on more than this many distinct routes in the window. */
  maxDeniedRoutes?: number;
  windowMs?: number;
  /** Identities remembered at once; the least recently seen is forgotten first. */
  maxIdentities?: number;
}

export const LATERAL_MOVEMENT_DEFAULTS = {
  maxRoutes: 20,
  maxDeniedRoutes: 5,
  windowMs: 10 * 60_000,
  maxIdentities: 100_000,
} as const;

interface Seen {
  routes: Map<string, number>;
  denied: Map<string, number>;
}

/**
 * Lateral movement: one identity (user, else session, else source IP) reaching more
 * than `maxRoutes` distinct routes, or denied on more than `maxDeniedRoutes` distinct
 * routes, within `windowMs`. Each identity keeps at most limit + 1 routes, so memory per
 * identity is bounded.
 */
export function lateralMovementDetector(options: LateralMovementOptions = {}): Detector {
  const { maxRoutes, maxDeniedRoutes, windowMs, maxIdentities } = {
    ...LATERAL_MOVEMENT_DEFAULTS,
    ...options,
  };
  if (!Number.isInteger(maxRoutes) || maxRoutes < 1)
    throw new TypeError('maxRoutes must be a positive integer');
  if (!Number.isInteger(maxDeniedRoutes) || maxDeniedRoutes < 1) {
    throw new TypeError('maxDeniedRoutes must be a positive integer');
  }
  const identities = new Map<string, Seen>();
  const touch = (routes: Map<string, number>, route: string, time: number, limit: number) => {
    routes.delete(route);
    routes.set(route, time);
    // Insertion order is recency order: expired and surplus routes are at the front.
    for (const [name, seen] of routes) {
      if (seen > time - windowMs && routes.size <= limit + 1) break;
      routes.delete(name);
    }
  };
  return builtInDetector({
    name: 'lateral-movement',
    spec: { type: 'lateral-movement', options: { ...options } },
    observe(event, report) {
      if (event.kind !== 'decision' || event.route === null) return;
      const identity = event.user ?? (event.session ? `session:${event.session}` : `ip:${event.sourceIp}`);
      let seen = identities.get(identity);
      if (seen) identities.delete(identity);
      else seen = { routes: new Map(), denied: new Map() };
      identities.set(identity, seen);
      if (identities.size > maxIdentities) {
        const oldest = identities.keys().next().value;
        if (oldest !== undefined) identities.delete(oldest);
      }
      touch(seen.routes, event.route, event.time, maxRoutes);
      if (event.decision === 'deny') touch(seen.denied, event.route, event.time, maxDeniedRoutes);
      const tooMany = seen.routes.size > maxRoutes;
      const tooManyDenied = seen.denied.size > maxDeniedRoutes;
      if (!tooMany && !tooManyDenied) return;
      report.flag('lateral-movement');
      report.alert({
        key: identity,
        severity: tooManyDenied ? 'high' : 'medium',
        summary: tooManyDenied
          ? `${identity} denied on more than ${maxDeniedRoutes} routes within ${windowMs / 1000}s`
          : `${identity} reached more than ${maxRoutes} routes within ${windowMs / 1000}s`,
        risk: ['lateral-movement'],
        user: event.user,
        session: event.session,
        sourceIp: event.sourceIp,
        evidence: [event.requestId],
      });
    },
  });
}

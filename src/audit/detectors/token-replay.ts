import { builtInDetector, type Detector } from '../detect.ts';

export interface TokenReplayOptions {
  /** A second source IP for the same session within this window is a replay. */
  windowMs?: number;
  /** Sessions remembered at once; the least recently seen is forgotten first. */
  maxSessions?: number;
}

export const TOKEN_REPLAY_DEFAULTS = { windowMs: 10 * 60_000, maxSessions: 200_000 } as const;

/** Distinct addresses kept per session; enough to show the replay, bounded against floods. */
const MAX_ADDRESSES = 4;

/**
 * Token replay: the same session or token id used from two source IPs within
 * `windowMs`. Flags the decision `token-replay`; alerts keyed by the session id.
 */
export function tokenReplayDetector(options: TokenReplayOptions = {}): Detector {
  const { windowMs, maxSessions } = { ...TOKEN_REPLAY_DEFAULTS, ...options };
  if (!(windowMs > 0)) throw new TypeError('windowMs must be positive');
  const sessions = new Map<string, Map<string, number>>();
  return builtInDetector({
    name: 'token-replay',
    spec: { type: 'token-replay', options: { ...options } },
    observe(event, report) {
      if (event.kind !== 'decision' || event.session === null || event.sourceIp === '') return;
      let addresses = sessions.get(event.session);
      if (addresses) sessions.delete(event.session);
      else addresses = new Map();
      sessions.set(event.session, addresses);
      if (sessions.size > maxSessions) {
        const oldest = sessions.keys().next().value;
        if (oldest !== undefined) sessions.delete(oldest);
      }
      for (const [address, seen] of addresses) {
        if (seen <= event.time - windowMs) addresses.delete(address);
      }
      addresses.delete(event.sourceIp);
      addresses.set(event.sourceIp, event.time);
      if (addresses.size > MAX_ADDRESSES) {
        const oldest = addresses.keys().next().value;
        if (oldest !== undefined) addresses.delete(oldest);
      }
      if (addresses.size < 2) return;
      report.flag('token-replay');
      report.alert({
        key: event.session,
        severity: 'high',
        summary: `session ${event.session} used from ${[...addresses.keys()].join(', ')} within ${windowMs / 1000}s`,
        risk: ['token-replay'],
        user: event.user,
        session: event.session,
        sourceIp: event.sourceIp,
        evidence: [event.requestId],
      });
    },
  });
}

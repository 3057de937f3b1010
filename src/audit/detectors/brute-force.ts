import { builtInDetector, type Detector } from '../detect.ts';

export interface BruteForceOptions {
  /** Alert when denials from one source IP exceed this many within the window. */
  threshold?: number;
  windowMs?: number;
  /** Source IPs remembered at once; the least recently seen is forgotten first. */
  maxSources?: number;
}

export const BRUTE_FORCE_DEFAULTS = { threshold: 5, windowMs: 5 * 60_000, maxSources: 100_000 } as const;

/**
 * Brute force: more than `threshold` denials from one source IP within a sliding window
 * of `windowMs` (a denial exactly `windowMs` old has left the window). Flags every
 * denial past the threshold `brute-force`; alerts keyed by the source IP.
 */
export function bruteForceDetector(options: BruteForceOptions = {}): Detector {
  const { threshold, windowMs, maxSources } = { ...BRUTE_FORCE_DEFAULTS, ...options };
  if (!Number.isInteger(threshold) || threshold < 1)
    throw new TypeError('threshold must be a positive integer');
  if (!(windowMs > 0)) throw new TypeError('windowMs must be positive');
  // Per source, the times and request ids of its most recent denials; only
  // threshold + 1 of them matter, so that is all that is kept.
  const recent = new Map<string, { times: number[]; requests: string[] }>();
  return builtInDetector({
    name: 'brute-force',
    spec: { type: 'brute-force', options: { ...options } },
    observe(event, report) {
      if (event.kind !== 'decision' || event.decision !== 'deny' || event.sourceIp === '') return;
      let entry = recent.get(event.sourceIp);
      if (entry) recent.delete(event.sourceIp);
      else entry = { times: [], requests: [] };
      recent.set(event.sourceIp, entry);
      if (recent.size > maxSources) {
        const oldest = recent.keys().next().value;
        if (oldest !== undefined) recent.delete(oldest);
      }
      entry.times.push(event.time);
      entry.requests.push(event.requestId);
      while (entry.times.length > 0 && (entry.times[0] as number) <= event.time - windowMs) {
        entry.times.shift();
        entry.requests.shift();
      }
      if (entry.times.length > threshold + 1) {
        entry.times.shift();
        entry.requests.shift();
      }
      if (entry.times.length <= threshold) return;
      report.flag('brute-force');
      report.alert({
        key: event.sourceIp,
        severity: 'high',
        summary: `more than ${threshold} denials from ${event.sourceIp} within ${windowMs / 1000}s`,
        risk: ['brute-force'],
        sourceIp: event.sourceIp,
        user: event.user,
        evidence: [...entry.requests],
      });
    },
  });
}

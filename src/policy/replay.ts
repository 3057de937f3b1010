import type { CompiledPolicySet } from './compile.ts';
import type { Reason } from './reasons.ts';
import type { Effect, PolicyInput } from './types.ts';

/** One logged decision, with the facts it was made on (from the audit log). */
export interface RecordedDecision {
  time: number;
  host?: string;
  route: string | null;
  method: string;
  path: string;
  sourceIp: string;
  user: string | null;
  groups?: readonly string[];
  amr?: readonly string[];
  authTime?: number;
  decision: Effect;
}

/** Decisions that a draft would change, grouped by route, user and direction. */
export interface ReplayChange {
  route: string;
  user: string;
  before: Effect;
  after: Effect;
  count: number;
  /** Rule and reasons the draft decided with (for the first such request). */
  rule: string | null;
  reasons: readonly Reason[];
  examplePath: string;
}

export interface ReplayReport {
  replayed: number;
  changed: number;
  /** Logged without the facts needed to replay them (no host, or a user without groups). */
  skipped: number;
  changes: ReplayChange[];
}

/**
 * Re-decides logged requests with a draft policy set and reports what would change —
 * the "who would be denied" question of a permissive-to-strict rollout, answered before
 * the draft serves. Device state was not logged, so device conditions see no device.
 */
export function replayDecisions(draft: CompiledPolicySet, records: Iterable<RecordedDecision>): ReplayReport {
  const changes = new Map<string, ReplayChange>();
  let replayed = 0;
  let changed = 0;
  let skipped = 0;
  for (const record of records) {
    if (record.host === undefined || (record.user !== null && record.groups === undefined)) {
      skipped++;
      continue;
    }
    const input: PolicyInput = {
      host: record.host,
      path: record.path,
      method: record.method,
      sourceIp: record.sourceIp,
      now: record.time,
      ...(record.user !== null
        ? {
            user: {
              id: record.user,
              groups: record.groups ?? [],
              ...(record.amr !== undefined ? { amr: record.amr } : {}),
              ...(record.authTime !== undefined ? { authTime: record.authTime } : {}),
            },
          }
        : {}),
    };
    const decision = draft.decide(input);
    replayed++;
    if (decision.effect === record.decision) continue;
    changed++;
    const route = decision.route ?? record.route ?? '(no route)';
    const user = record.user ?? '(anonymous)';
    const key = `${route}\u0000${user}\u0000${record.decision}`;
    const existing = changes.get(key);
    if (existing) {
      existing.count++;
      continue;
    }
    changes.set(key, {
      route,
      user,
      before: record.decision,
      after: decision.effect,
      count: 1,
      rule: decision.rule,
      reasons: decision.reasons,
      examplePath: record.path,
    });
  }
  const sorted = [...changes.values()].sort(
    (a, b) =>
      a.route.localeCompare(b.route) || a.user.localeCompare(b.user) || a.before.localeCompare(b.before),
  );
  return { replayed, changed, skipped, changes: sorted };
}

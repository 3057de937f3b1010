import { z } from 'zod';

/**
 * Risk flags a detector attaches to decision events and alerts, so that "everything risky
 * in the last 24 h" is one query. Closed list: the console and the CLI switch on them.
 */
export const RISK_FLAGS = [
  'brute-force',
  'lateral-movement',
  'after-hours',
  'device-posture-failed',
  'posture-stale',
  'new-device',
  'token-replay',
] as const;
export type RiskFlag = (typeof RISK_FLAGS)[number];

export const EVENT_KINDS = ['decision', 'admin', 'alert'] as const;
export type AuditEventKind = (typeof EVENT_KINDS)[number];

/** Bounds for strings that come from requests (paths, user agents): an event row stays small. */
const MAX_TEXT = 2048;
const MAX_LIST = 64;

const text = z.string().max(MAX_TEXT);
const id = z.string().min(1).max(512);
const time = z.number().int().nonnegative();
const riskList = z.array(z.enum(RISK_FLAGS)).max(RISK_FLAGS.length).readonly();

/** One access decision of the proxy, forward-auth endpoint or a gateway. */
export const decisionEventSchema = z.strictObject({
  kind: z.literal('decision'),
  /** Epoch milliseconds when the decision was made. */
  time,
  requestId: id,
  /** `<idp>:<subject>`, null when the request carried no identity. */
  user: id.nullable(),
  device: id.nullable(),
  /** Session or token id (never the token itself), for replay detection. */
  session: id.nullable(),
  sourceIp: z.string().max(64),
  /** Route id, null when no route matched. */
  route: id.nullable(),
  method: z.string().max(16),
  path: text,
  host: z.string().max(255).optional(),
  decision: z.enum(['allow', 'deny']),
  /** Rule that decided; null for default deny. */
  rule: z.string().max(256).nullable(),
  reasons: z.array(z.string().max(64)).max(MAX_LIST).readonly(),
  /** Time spent deciding, in milliseconds (fractions allowed). */
  latencyMs: z.number().nonnegative(),
  /** `audit`: the policy runs in dry-run and the verdict was recorded, not enforced. */
  mode: z.enum(['enforce', 'audit']).optional(),
  /**
   * The identity facts the decision was made on, so that `vigil policy replay` can ask
   * a draft policy the same question later. Group names and MFA methods, no claims.
   */
  groups: z.array(z.string().max(256)).max(MAX_LIST).readonly().optional(),
  amr: z.array(z.string().max(64)).max(MAX_LIST).readonly().optional(),
  authTime: time.optional(),
  /** Enforcement point: proxy, forward-auth, gateway, sidecar … */
  via: z.string().max(32).optional(),
  risk: riskList.optional(),
});

/**
 * An administrative change. `action` is `noun.verb`: session.created, session.revoked,
 * device.enrolled, device.revoked, policy.changed, certificate.issued, ...
 */
export const adminEventSchema = z.strictObject({
  kind: z.literal('admin'),
  time,
  requestId: id.nullable().optional(),
  /** Who did it: a user id, `admin-token:<name>` or `system`. */
  actor: id,
  action: z
    .string()
    .regex(/^[a-z][a-z-]*\.[a-z][a-z-]*$/, 'action must be noun.verb in kebab-case')
    .max(64),
  /** What it was done to: a session, device, policy name or certificate serial. */
  target: id,
  sourceIp: z.string().max(64).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** What a detector saw; itself an audit event, so that alerts are chained and queryable. */
export const alertEventSchema = z.strictObject({
  kind: z.literal('alert'),
  time,
  detector: z.string().max(64),
  /** What the alert is about (an IP, user, session); deduplication is per (detector, key). */
  key: z.string().max(512),
  severity: z.enum(['low', 'medium', 'high']),
  summary: text,
  risk: riskList,
  user: id.nullable().optional(),
  device: id.nullable().optional(),
  sourceIp: z.string().max(64).optional(),
  session: id.nullable().optional(),
  /** Request ids of the events that triggered the alert (bounded). */
  evidence: z.array(id).max(MAX_LIST).readonly().optional(),
});

export const auditEventSchema = z.discriminatedUnion('kind', [
  decisionEventSchema,
  adminEventSchema,
  alertEventSchema,
]);

export type DecisionEvent = z.infer<typeof decisionEventSchema>;
export type AdminEvent = z.infer<typeof adminEventSchema>;
export type AlertEvent = z.infer<typeof alertEventSchema>;
export type AuditEvent = DecisionEvent | AdminEvent | AlertEvent;

/** An event as stored: its place in the chain and its id, assigned by the writer. */
export type AuditRecord = AuditEvent & { seq: number; id: string };

/** What an enforcement point knows about one decision; the proxy's record has this shape. */
export interface DecisionFacts {
  requestId: string;
  time: number;
  route: string | null;
  host?: string;
  method: string;
  path: string;
  sourceIp: string;
  user: string | null;
  device: string | null;
  /** Session or token id (not the token); needed by the token-replay detector. */
  session?: string | null;
  decision: {
    effect: 'allow' | 'deny';
    rule: string | null;
    reasons: readonly string[];
    mode?: 'enforce' | 'audit';
  };
  via?: string;
  latencyMs?: number;
  groups?: readonly string[];
  amr?: readonly string[];
  authTime?: number;
}

/**
 * Builds a decision event from an enforcement point's facts, e.g. in the server:
 * `record: (facts) => audit.enqueue(decisionEvent(facts))`. Copies only the audited
 * fields, so nothing else the caller holds (headers, claims) reaches the log.
 */
export function decisionEvent(facts: DecisionFacts): DecisionEvent {
  const event: DecisionEvent = {
    kind: 'decision',
    time: facts.time,
    requestId: facts.requestId,
    user: facts.user,
    device: facts.device,
    session: facts.session ?? null,
    sourceIp: facts.sourceIp,
    route: facts.route,
    method: facts.method,
    path: facts.path,
    decision: facts.decision.effect,
    rule: facts.decision.rule,
    reasons: facts.decision.reasons,
    latencyMs: facts.latencyMs ?? 0,
  };
  if (facts.host !== undefined) event.host = facts.host;
  if (facts.decision.mode !== undefined) event.mode = facts.decision.mode;
  if (facts.via !== undefined) event.via = facts.via;
  if (facts.groups !== undefined) event.groups = facts.groups.slice(0, MAX_LIST);
  if (facts.amr !== undefined) event.amr = facts.amr.slice(0, MAX_LIST);
  if (facts.authTime !== undefined) event.authTime = facts.authTime;
  return event;
}

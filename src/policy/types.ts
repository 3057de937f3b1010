import type { Reason } from './reasons.ts';

/** Posture as last reported for a device; `reportedAt` is epoch ms. */
export interface DevicePosture {
  osFamily?: string;
  osVersion?: string;
  diskEncrypted?: boolean;
  firewall?: boolean;
  screenLock?: boolean;
  edrRunning?: boolean;
  /** A posture provider (MDM/EDR) judged the device compliant with its own rules. */
  compliant?: boolean;
  reportedAt: number;
}

/**
 * Everything a decision may look at. The proxy builds one per request from data it
 * already holds in memory; absent parts mean "not known", never "anything goes".
 * `host` is lower-case without a port; `path` is the normalized path without the query.
 */
export interface PolicyInput {
  host: string;
  path: string;
  method: string;
  /** Lower-case header names. */
  headers?: Readonly<Record<string, string | undefined>>;
  sourceIp?: string;
  /** Epoch ms from the injected clock. */
  now: number;
  user?: {
    id: string;
    email?: string;
    groups: readonly string[];
    claims?: Readonly<Record<string, unknown>>;
    amr?: readonly string[];
    /** Epoch ms of the last interactive authentication. */
    authTime?: number;
  };
  device?: {
    id: string;
    state: 'registered' | 'managed' | 'revoked';
    posture?: DevicePosture;
  };
  workload?: { spiffeId: string };
  clientCertificate?: boolean;
}

export type Effect = 'allow' | 'deny';
export type Mode = 'enforce' | 'audit';

/**
 * The outcome of one request. In `audit` mode `effect` is still the verdict the policy
 * reached; the caller lets the request through and records the would-be decision.
 */
export interface Decision {
  readonly effect: Effect;
  readonly rule: string | null;
  readonly reasons: readonly Reason[];
  readonly mode: Mode;
  readonly route?: string | null;
  readonly explain?: ExplainTrace;
}

export type ConditionState = 'true' | 'false' | 'unknown';

export interface ExplainCondition {
  /** Dotted location inside the rule, e.g. `allow.and[1].groups`. */
  readonly path: string;
  /** The condition as written, compactly. */
  readonly condition: string;
  readonly state: ConditionState;
  readonly reasons: readonly Reason[];
}

export interface ExplainRule {
  readonly rule: string;
  readonly effect: Effect;
  readonly matched: boolean;
  readonly state: ConditionState;
  /** Every leaf condition that did not hold (empty when the rule matched). */
  readonly failed: readonly ExplainCondition[];
}

export interface ExplainTrace {
  readonly route: {
    readonly host: string;
    readonly pathPrefix: string;
    readonly policy: string;
    readonly mode: Mode;
  } | null;
  readonly rules: readonly ExplainRule[];
}

/** A route as the proxy config or a policy file declares it. */
export interface RouteSpec {
  /** Name decisions and audit events carry; `host/prefix` when absent. */
  name?: string;
  host: string;
  pathPrefix?: string;
  policy: string;
  mode?: Mode;
  /** Where it was declared, for error messages ("vigil.yaml:12"). */
  source?: string;
}

export interface Finding {
  readonly severity: 'error' | 'warning';
  readonly code: string;
  readonly location: string;
  readonly message: string;
}

/**
 * Vigil's policy engine: parse -> compile to closures -> decide + explain; policy tests
 * and static checks. The only module other capabilities import from src/policy.
 */
export type { Clock } from '../internal/clock.ts';
export { checkPolicies } from './check.ts';
export {
  type CompiledPolicy,
  CompiledPolicySet,
  type CompiledRoute,
  type CompiledRule,
  type CompileOptions,
  compilePolicies,
  NO_ROUTE_DECISION,
} from './compile.ts';
export { compareVersions } from './conditions/device.ts';
export { type PolicyDocument, parsePolicyFile, parsePolicyText } from './parse.ts';
export { REASONS, type Reason } from './reasons.ts';
export { PolicyStore } from './store.ts';
export {
  type PolicyTestCase,
  type PolicyTestFile,
  parsePolicyInput,
  parseTestFile,
  runPolicyTests,
  type TestResult,
} from './testing.ts';
export type {
  ConditionState,
  Decision,
  DevicePosture,
  Effect,
  ExplainCondition,
  ExplainRule,
  ExplainTrace,
  Finding,
  Mode,
  PolicyInput,
  RouteSpec,
} from './types.ts';

import type { Decision } from './types.ts';

/** Whether the proxy lets the request through: an allow, or anything on an `audit` route. */
export function permits(decision: Decision): boolean {
  return decision.effect === 'allow' || decision.mode === 'audit';
}
export { type RecordedDecision, type ReplayChange, type ReplayReport, replayDecisions } from './replay.ts';

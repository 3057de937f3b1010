import { stringify } from 'yaml';
import {
  type CompiledPolicySet,
  compilePolicies,
  type Decision,
  type PolicyInput,
  parsePolicyText,
} from '../../src/policy/index.ts';
import type { ConditionSpec } from '../../src/policy/schema.ts';

export const NOW = Date.UTC(2026, 0, 5, 12, 0, 0);
export const HOST = 'app.corp.example';

/** A set with one route and one policy whose rules are given as YAML-able objects. */
export function policySet(
  rules: readonly Record<string, unknown>[],
  mode: 'enforce' | 'audit' = 'enforce',
): CompiledPolicySet {
  const text = stringify({
    policies: [{ name: 'p', rules }],
    routes: [{ host: HOST, policy: 'p', mode }],
  });
  return compilePolicies([parsePolicyText(text, 'test.yaml')]);
}

/** decide() for a policy with a single allow rule "r" holding `condition`. */
export function allowIf(
  condition: ConditionSpec | Record<string, unknown>,
): (input?: Partial<PolicyInput>) => Decision {
  const set = policySet([{ name: 'r', allow: condition }]);
  return (input = {}) => set.decide(request(input));
}

/** decide() for a policy with an unconditional allow and a deny rule "d" holding `condition`. */
export function denyIf(
  condition: ConditionSpec | Record<string, unknown>,
): (input?: Partial<PolicyInput>) => Decision {
  const set = policySet([
    { name: 'd', deny: condition },
    { name: 'all', allow: true },
  ]);
  return (input = {}) => set.decide(request(input));
}

export function request(input: Partial<PolicyInput> = {}): PolicyInput {
  return { host: HOST, path: '/', method: 'GET', now: NOW, ...input };
}

export const alice = { id: 'alice', email: 'alice@company.com', groups: ['engineering', 'sre'] };

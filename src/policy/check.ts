import { isVigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { compilePolicies } from './compile.ts';
import { parseInstant } from './conditions/time.ts';
import type { PolicyDocument } from './parse.ts';
import type { ConditionSpec, RuleBody, RuleSpec } from './schema.ts';
import type { Finding, RouteSpec } from './types.ts';

/** One conjunct of a rule: a single condition key and its value, or a negated conjunction. */
interface Conjunct {
  readonly key: string;
  readonly value: unknown;
  readonly canonical: string;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The top-level conjunction of a rule body; `true` is the empty conjunction (always holds). */
function conjuncts(body: RuleBody): Conjunct[] {
  if (body === true) return [];
  const out: Conjunct[] = [];
  const walk = (spec: ConditionSpec) => {
    for (const [key, value] of Object.entries(spec)) {
      if (value === undefined) continue;
      if (key === 'and') for (const item of value as ConditionSpec[]) walk(item);
      else out.push({ key, value, canonical: `${key}=${canonical(value)}` });
    }
  };
  walk(body);
  return out;
}

const LIST_KEYS = new Set(['user', 'email', 'email_domain', 'device_id', 'method', 'source_ip']);
const many = (value: unknown): string[] => (Array.isArray(value) ? (value as string[]) : [value as string]);
const subset = (a: readonly string[], b: readonly string[]) => a.every((item) => b.includes(item));

/** Whether conjunct `a` holding guarantees `b` holds (sound, not complete). */
function implies(a: Conjunct, b: Conjunct): boolean {
  if (a.canonical === b.canonical) return true;
  if (b.key === 'device' && b.value === 'none') return true;
  if (a.key !== b.key) return false;
  if (LIST_KEYS.has(a.key)) return subset(a.value as string[], b.value as string[]);
  if (a.key === 'device') return a.value === 'managed' && b.value === 'registered';
  if (a.key === 'groups' || a.key === 'amr') {
    const x = a.value as { any?: string[]; all?: string[] };
    const y = b.value as { any?: string[]; all?: string[] };
    if (x.any && y.any) return subset(x.any, y.any);
    if (x.all && y.all) return subset(y.all, x.all);
    if (x.all && y.any) return x.all.some((item) => y.any?.includes(item));
    return false;
  }
  if (a.key === 'path') {
    const x = a.value as NonNullable<ConditionSpec['path']>;
    const y = b.value as NonNullable<ConditionSpec['path']>;
    if (y.prefix === undefined)
      return x.equals !== undefined && y.equals !== undefined && subset(many(x.equals), many(y.equals));
    const prefixes = many(y.prefix);
    const covered = (path: string) => prefixes.some((prefix) => path.startsWith(prefix));
    if (x.prefix !== undefined) return many(x.prefix).every(covered);
    if (x.equals !== undefined) return many(x.equals).every(covered);
  }
  return false;
}

/** Why a conjunction can never hold, or undefined. */
function contradiction(parts: readonly Conjunct[]): string | undefined {
  for (let i = 0; i < parts.length; i++) {
    const a = parts[i] as Conjunct;
    for (let j = i + 1; j < parts.length; j++) {
      const b = parts[j] as Conjunct;
      if (a.key === b.key && LIST_KEYS.has(a.key) && a.key !== 'source_ip') {
        const x = a.value as string[];
        if (!x.some((item) => (b.value as string[]).includes(item))) return `${a.key} lists share no value`;
      }
      if (a.key === 'path' && b.key === 'path') {
        const x = a.value as NonNullable<ConditionSpec['path']>;
        const y = b.value as NonNullable<ConditionSpec['path']>;
        if (x.equals && y.equals && !many(x.equals).some((item) => many(y.equals ?? []).includes(item))) {
          return 'path equals lists share no value';
        }
      }
      const negates = (p: Conjunct, q: Conjunct) =>
        p.key === 'not' && conjuncts(p.value as ConditionSpec).every((inner) => implies(q, inner));
      if (negates(a, b) || negates(b, a)) return 'a condition and its negation';
    }
    if (a.key === 'time') {
      const time = a.value as NonNullable<ConditionSpec['time']>;
      if (time.valid_from && time.valid_until) {
        if ((parseInstant(time.valid_until) as number) <= (parseInstant(time.valid_from) as number)) {
          return 'valid_until is not after valid_from';
        }
      }
      if (time.hours && time.hours.from === time.hours.to) return 'the hours window is empty';
    }
  }
  return undefined;
}

function expiredAt(parts: readonly Conjunct[], now: number): string | undefined {
  for (const part of parts) {
    if (part.key !== 'time') continue;
    const until = (part.value as NonNullable<ConditionSpec['time']>).valid_until;
    if (until !== undefined && (parseInstant(until) as number) <= now) return until;
  }
  return undefined;
}

/**
 * Static checks for `vigil policy check`: cross-file errors, unreachable and shadowed
 * rules, duplicates, expired grants, policies no route uses and routes with no policy.
 * Schema errors surface earlier, from parsing.
 */
export function checkPolicies(
  documents: readonly PolicyDocument[],
  options: { clock?: Clock; routes?: readonly RouteSpec[] } = {},
): Finding[] {
  const findings: Finding[] = [];
  const now = (options.clock ?? systemClock).now();
  const add = (severity: Finding['severity'], code: string, location: string, message: string) =>
    findings.push({ severity, code, location, message });

  const defined = new Set<string>();
  for (const document of documents) {
    for (const policy of document.spec.policies) defined.add(policy.name);
  }
  const routes =
    options.routes?.map((route, index) => ({
      policy: route.policy,
      location: route.source ?? `routes[${index}]`,
    })) ??
    documents.flatMap((document) =>
      document.spec.routes.map((route, index) => ({
        policy: route.policy,
        location: document.locate(['routes', index]),
      })),
    );
  const used = new Set(routes.map((route) => route.policy));
  for (const route of routes) {
    if (!defined.has(route.policy)) {
      add(
        'error',
        'route-without-policy',
        route.location,
        `route names policy "${route.policy}", which no file defines`,
      );
    }
  }
  if (routes.length === 0)
    add('warning', 'no-routes', documents[0]?.file ?? '-', 'no routes: every request is denied (no-route)');

  for (const document of documents) {
    document.spec.policies.forEach((policy, policyIndex) => {
      const where = (ruleIndex?: number) =>
        document.locate(
          ruleIndex === undefined ? ['policies', policyIndex] : ['policies', policyIndex, 'rules', ruleIndex],
        );
      if (!used.has(policy.name))
        add('warning', 'unused-policy', where(), `policy "${policy.name}" is not used by any route`);
      if (policy.rules.length === 0)
        add('warning', 'empty-policy', where(), `policy "${policy.name}" has no rules: it denies everything`);
      else if (!policy.rules.some((rule) => rule.allow !== undefined)) {
        add(
          'warning',
          'no-allow-rule',
          where(),
          `policy "${policy.name}" has no allow rule: it denies everything`,
        );
      }
      const parsed = policy.rules.map((rule: RuleSpec) => ({
        rule,
        effect: rule.allow !== undefined ? 'allow' : 'deny',
        parts: conjuncts(rule.allow ?? rule.deny ?? true),
      }));
      const seen = new Map<string, string>();
      parsed.forEach((entry, ruleIndex) => {
        const name = entry.rule.name;
        const reason = contradiction(entry.parts);
        if (reason !== undefined) {
          add('error', 'unreachable-rule', where(ruleIndex), `rule "${name}" can never match: ${reason}`);
        }
        const expired = expiredAt(entry.parts, now);
        if (expired !== undefined && reason === undefined)
          add('warning', 'expired-grant', where(ruleIndex), `rule "${name}" expired at ${expired}`);
        const key = `${entry.effect}:${entry.parts
          .map((part) => part.canonical)
          .sort()
          .join('&')}`;
        const twin = seen.get(key);
        if (twin !== undefined)
          add('warning', 'duplicate-rule', where(ruleIndex), `rule "${name}" repeats rule "${twin}"`);
        else seen.set(key, name);
        if (entry.effect !== 'allow' || reason !== undefined) return;
        for (const deny of parsed) {
          if (deny.effect !== 'deny' || contradiction(deny.parts) !== undefined) continue;
          if (deny.parts.every((part) => entry.parts.some((own) => implies(own, part)))) {
            const how = deny.parts.length === 0 ? 'unconditional' : 'broader';
            add(
              'error',
              'allow-shadowed',
              where(ruleIndex),
              `allow rule "${name}" can never take effect: the ${how} deny rule "${deny.rule.name}" matches every request it allows`,
            );
            break;
          }
        }
      });
    });
  }

  try {
    compilePolicies(documents, { clock: options.clock, routes: options.routes });
  } catch (error) {
    // Route references are reported above with their own code.
    if (isVigilError(error) && !/no policy named/.test(error.message)) {
      add('error', 'compile-error', error.message.split(' ')[0] ?? '-', error.message);
    } else if (!isVigilError(error)) {
      throw error;
    }
  }
  return findings;
}

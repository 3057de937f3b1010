import { VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { checkPolicies } from './check.ts';
import { type CompiledCondition, ConditionCompiler } from './compile-condition.ts';
import type { PolicyDocument } from './parse.ts';
import { bit, REASON_MASK, type Reason, reasonsOf, UNKNOWN } from './reasons.ts';
import { RouteIndex } from './routes.ts';
import type { PolicySpec } from './schema.ts';
import type {
  ConditionState,
  Decision,
  Effect,
  ExplainCondition,
  ExplainRule,
  ExplainTrace,
  Finding,
  Mode,
  PolicyInput,
  RouteSpec,
} from './types.ts';

export interface CompiledRule {
  readonly name: string;
  readonly effect: Effect;
  readonly condition: CompiledCondition;
  readonly location: string;
}

export interface CompiledPolicy {
  readonly name: string;
  readonly location: string;
  readonly rules: readonly CompiledRule[];
}

export interface CompiledRoute {
  /** The route's name (vigil.yaml), or `host/prefix` for routes declared in policy files. */
  readonly name: string;
  readonly host: string;
  readonly pathPrefix: string;
  readonly policy: CompiledPolicy;
  readonly mode: Mode;
  readonly source: string;
  readonly decide: (input: PolicyInput) => Decision;
}

const NO_REASONS: readonly Reason[] = Object.freeze([]);
const DENIED_BY_RULE = bit('denied-by-rule');
const NO_MATCHING_RULE = bit('no-matching-rule');

export const NO_ROUTE_DECISION: Decision = Object.freeze({
  effect: 'deny',
  rule: null,
  reasons: Object.freeze(['no-route'] as Reason[]),
  mode: 'enforce',
  route: null,
});

function freezeDecision(
  effect: Effect,
  rule: string | null,
  bits: number,
  mode: Mode,
  route: string,
): Decision {
  const reasons = bits === 0 ? NO_REASONS : Object.freeze(reasonsOf(bits));
  return Object.freeze({ effect, rule, reasons, mode, route });
}

/**
 * Builds the decision closure of one route. Every decision it can return is frozen and
 * made at most once (per rule and reason set), so deciding allocates nothing.
 * Semantics: a deny rule fires unless its condition is definitely false (an unknown
 * attribute fails closed); an allow rule fires only when its condition is definitely
 * true; deny beats allow; nothing firing is a deny.
 */
function buildDecide(policy: CompiledPolicy, mode: Mode, route: string): (input: PolicyInput) => Decision {
  const denies = policy.rules.filter((rule) => rule.effect === 'deny');
  const allows = policy.rules.filter((rule) => rule.effect === 'allow');
  const denyEval = denies.map((rule) => rule.condition.evaluate);
  const allowEval = allows.map((rule) => rule.condition.evaluate);
  const denyPlain = denies.map((rule) => freezeDecision('deny', rule.name, DENIED_BY_RULE, mode, route));
  const allowDecisions = allows.map((rule) => freezeDecision('allow', rule.name, 0, mode, route));
  const denyUnknown = denies.map(() => new Map<number, Decision>());
  const noMatch = new Map<number, Decision>();
  const denyCount = denies.length;
  const allowCount = allows.length;

  const deniedWhileUnknown = (index: number, bits: number): Decision => {
    const cache = denyUnknown[index] as Map<number, Decision>;
    let decision = cache.get(bits);
    if (decision === undefined) {
      decision = freezeDecision(
        'deny',
        (denies[index] as CompiledRule).name,
        bits | DENIED_BY_RULE,
        mode,
        route,
      );
      cache.set(bits, decision);
    }
    return decision;
  };
  const unmatched = (bits: number): Decision => {
    let decision = noMatch.get(bits);
    if (decision === undefined) {
      decision = freezeDecision('deny', null, bits === 0 ? NO_MATCHING_RULE : bits, mode, route);
      noMatch.set(bits, decision);
    }
    return decision;
  };

  return (input) => {
    for (let index = 0; index < denyCount; index++) {
      const result = (denyEval[index] as (input: PolicyInput) => number)(input);
      if (result === 0) return denyPlain[index] as Decision;
      if (result & UNKNOWN) return deniedWhileUnknown(index, result & REASON_MASK);
    }
    let failed = 0;
    for (let index = 0; index < allowCount; index++) {
      const result = (allowEval[index] as (input: PolicyInput) => number)(input);
      if (result === 0) return allowDecisions[index] as Decision;
      failed |= result;
    }
    return unmatched(failed & REASON_MASK);
  };
}

function stateOf(result: number): ConditionState {
  if (result === 0) return 'true';
  return result & UNKNOWN ? 'unknown' : 'false';
}

/** Leaves (and failed `not`s) that kept a condition from holding. */
function failedLeaves(condition: CompiledCondition, input: PolicyInput, out: ExplainCondition[]): void {
  const result = condition.evaluate(input);
  if (result === 0) return;
  if (condition.kind === 'and' || condition.kind === 'or') {
    for (const child of condition.children) failedLeaves(child, input, out);
    return;
  }
  out.push(
    Object.freeze({
      path: condition.path,
      condition: condition.label === 'not' ? `not ${condition.children[0]?.label ?? ''}` : condition.label,
      state: stateOf(result),
      reasons: Object.freeze(reasonsOf(result & REASON_MASK)),
    }),
  );
}

function explainRules(policy: CompiledPolicy, input: PolicyInput): ExplainRule[] {
  return policy.rules.map((rule) => {
    const result = rule.condition.evaluate(input);
    const state = stateOf(result);
    const matched = rule.effect === 'allow' ? state === 'true' : state !== 'false';
    const failed: ExplainCondition[] = [];
    failedLeaves(rule.condition, input, failed);
    return Object.freeze({
      rule: rule.name,
      effect: rule.effect,
      matched,
      state,
      failed: Object.freeze(failed),
    });
  });
}

function compilePolicy(
  spec: PolicySpec,
  document: PolicyDocument,
  index: number,
  compiler: ConditionCompiler,
): CompiledPolicy {
  const seen = new Set<string>();
  const rules = spec.rules.map((rule, ruleIndex) => {
    const location = document.locate(['policies', index, 'rules', ruleIndex]);
    if (seen.has(rule.name)) {
      throw invalid(
        `${location} policies[${index}].rules[${ruleIndex}].name: duplicate rule name "${rule.name}"`,
      );
    }
    seen.add(rule.name);
    const effect: Effect = rule.allow !== undefined ? 'allow' : 'deny';
    const body = rule.allow ?? rule.deny ?? true;
    return Object.freeze({ name: rule.name, effect, condition: compiler.compile(body, effect), location });
  });
  return Object.freeze({
    name: spec.name,
    location: document.locate(['policies', index]),
    rules: Object.freeze(rules),
  });
}

function invalid(message: string): VigilError {
  return new VigilError('ERR_POLICY_INVALID', message, { publicMessage: 'invalid policy' });
}

export interface CompileOptions {
  /** Used by `check` to flag grants that already expired. */
  clock?: Clock;
  /**
   * The route table, e.g. built from vigil.yaml. When given, routes in policy files are
   * ignored so that one place decides what is routed.
   */
  routes?: readonly RouteSpec[];
}

/** Policies compiled to closures behind a host + longest-path-prefix index. Immutable. */
export class CompiledPolicySet {
  readonly policies: ReadonlyMap<string, CompiledPolicy>;
  readonly routes: readonly CompiledRoute[];
  readonly documents: readonly PolicyDocument[];
  readonly clock: Clock;
  readonly #index: RouteIndex<CompiledRoute>;
  readonly #routeSpecs: readonly RouteSpec[] | undefined;

  constructor(
    policies: ReadonlyMap<string, CompiledPolicy>,
    routes: readonly CompiledRoute[],
    documents: readonly PolicyDocument[],
    clock: Clock,
    routeSpecs?: readonly RouteSpec[],
  ) {
    this.#routeSpecs = routeSpecs;
    this.policies = policies;
    this.routes = routes;
    this.documents = documents;
    this.clock = clock;
    this.#index = new RouteIndex(routes);
    Object.freeze(this);
  }

  /** Static findings for `vigil policy check`: shadowed and unreachable rules, unused policies, ... */
  check(): Finding[] {
    return checkPolicies(this.documents, { clock: this.clock, routes: this.#routeSpecs });
  }

  /** The route serving host + path (longest path prefix on a segment boundary), if any. */
  routeFor(host: string, path: string): CompiledRoute | undefined {
    return this.#index.lookup(host, path);
  }

  /**
   * Decides one request. Without `explain` this is a route look-up and closure calls that
   * return a shared frozen Decision; with `explain` the Decision carries a trace of every rule.
   */
  decide(input: PolicyInput, options?: { explain?: boolean }): Decision {
    const route = this.#index.lookup(input.host, input.path);
    if (options?.explain !== true) return route === undefined ? NO_ROUTE_DECISION : route.decide(input);
    if (route === undefined) {
      return Object.freeze({
        ...NO_ROUTE_DECISION,
        explain: Object.freeze({ route: null, rules: Object.freeze([]) }),
      });
    }
    const explain: ExplainTrace = Object.freeze({
      route: Object.freeze({
        host: route.host,
        pathPrefix: route.pathPrefix,
        policy: route.policy.name,
        mode: route.mode,
      }),
      rules: Object.freeze(explainRules(route.policy, input)),
    });
    return Object.freeze({ ...route.decide(input), explain });
  }
}

/** Compiles validated documents; throws VigilError('ERR_POLICY_INVALID') on cross-document errors. */
export function compilePolicies(
  documents: readonly PolicyDocument[],
  options: CompileOptions = {},
): CompiledPolicySet {
  const policies = new Map<string, CompiledPolicy>();
  const compiler = new ConditionCompiler();
  for (const document of documents) {
    document.spec.policies.forEach((spec, index) => {
      const previous = policies.get(spec.name);
      if (previous !== undefined) {
        throw invalid(
          `${document.locate(['policies', index, 'name'])} policies[${index}].name: policy "${spec.name}" is already defined at ${previous.location}`,
        );
      }
      policies.set(spec.name, compilePolicy(spec, document, index, compiler));
    });
  }
  const specs: RouteSpec[] =
    options.routes !== undefined
      ? [...options.routes]
      : documents.flatMap((document) =>
          document.spec.routes.map((route, index) => ({
            host: route.host,
            pathPrefix: route.path_prefix,
            policy: route.policy,
            mode: route.mode,
            source: `${document.locate(['routes', index])} routes[${index}]`,
          })),
        );
  const seen = new Map<string, string>();
  const routes = specs.map((spec, index): CompiledRoute => {
    const source = spec.source ?? `routes[${index}]`;
    const host = spec.host.toLowerCase();
    const pathPrefix = normalizePrefix(spec.pathPrefix ?? '/');
    const key = `${host}${pathPrefix}`;
    const clash = seen.get(key);
    if (clash !== undefined) throw invalid(`${source}: route ${key} is already declared at ${clash}`);
    seen.set(key, source);
    const policy = policies.get(spec.policy);
    if (policy === undefined) throw invalid(`${source}.policy: no policy named "${spec.policy}"`);
    const mode = spec.mode ?? 'enforce';
    const name = spec.name ?? key;
    return Object.freeze({
      name,
      host,
      pathPrefix,
      policy,
      mode,
      source,
      decide: buildDecide(policy, mode, name),
    });
  });
  return new CompiledPolicySet(
    policies,
    Object.freeze(routes),
    Object.freeze([...documents]),
    options.clock ?? systemClock,
    options.routes,
  );
}

/** "/wiki/" and "/wiki" are the same route prefix; "/" stays "/". */
export function normalizePrefix(prefix: string): string {
  if (!prefix.startsWith('/')) throw new TypeError(`route path prefix must start with /: ${prefix}`);
  return prefix.length > 1 && prefix.endsWith('/') ? prefix.replace(/\/+$/, '') || '/' : prefix;
}

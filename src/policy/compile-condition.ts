import * as device from './conditions/device.ts';
import * as http from './conditions/http.ts';
import * as identity from './conditions/identity.ts';
import type { Evaluate, Leaf } from './conditions/leaf.ts';
import { sourceIp } from './conditions/network.ts';
import { timeWindow } from './conditions/time.ts';
import * as workload from './conditions/workload.ts';
import { negatedBits, REASON_MASK, UNKNOWN } from './reasons.ts';
import type { ConditionSpec, RuleBody } from './schema.ts';

/** A compiled condition tree: closures for deciding, structure kept for explain and check. */
export interface CompiledCondition {
  readonly kind: 'leaf' | 'and' | 'or' | 'not' | 'true';
  readonly evaluate: Evaluate;
  /** Reason bits the node can fail with (no UNKNOWN flag). */
  readonly reasons: number;
  /** Where it sits in the rule: "allow.and[1].groups". */
  readonly path: string;
  /** The condition as written. */
  readonly label: string;
  readonly children: readonly CompiledCondition[];
}

type Key = keyof ConditionSpec;

function leafFor(key: Key, value: unknown): Leaf {
  switch (key) {
    case 'authenticated':
      return identity.authenticated();
    case 'user':
      return identity.userId(value as string[]);
    case 'email':
      return identity.email(value as string[]);
    case 'email_domain':
      return identity.emailDomain(value as string[]);
    case 'groups':
      return identity.groups(value as NonNullable<ConditionSpec['groups']>);
    case 'claim':
      return identity.claim(value as NonNullable<ConditionSpec['claim']>);
    case 'mfa':
      return identity.mfa();
    case 'amr':
      return identity.amr(value as NonNullable<ConditionSpec['amr']>);
    case 'auth_age':
      return identity.authAge(value as string);
    case 'device':
      return device.deviceLevel(value as NonNullable<ConditionSpec['device']>);
    case 'device_id':
      return device.deviceId(value as string[]);
    case 'posture':
      return device.posture(value as NonNullable<ConditionSpec['posture']>);
    case 'source_ip':
      return sourceIp(value as string[]);
    case 'time':
      return timeWindow(value as NonNullable<ConditionSpec['time']>);
    case 'method':
      return http.method(value as string[]);
    case 'path':
      return http.path(value as NonNullable<ConditionSpec['path']>);
    case 'header':
      return http.header(value as NonNullable<ConditionSpec['header']>);
    case 'spiffe_id':
      return workload.spiffeId(value as NonNullable<ConditionSpec['spiffe_id']>);
    case 'client_certificate':
      return workload.clientCertificate();
    default:
      throw new TypeError(`no compiler for condition ${key}`);
  }
}

/**
 * Kleene three-valued `and`: a false child decides at once; otherwise unknown children
 * make the whole unknown, and their reasons accumulate.
 */
function andOf(children: readonly Evaluate[]): Evaluate {
  if (children.length === 1) return children[0] as Evaluate;
  if (children.length === 2) {
    const [a, b] = children as [Evaluate, Evaluate];
    return (input) => {
      const left = a(input);
      if (left !== 0 && (left & UNKNOWN) === 0) return left;
      const right = b(input);
      if (right !== 0 && (right & UNKNOWN) === 0) return right;
      return left | right;
    };
  }
  return (input) => {
    let acc = 0;
    for (let index = 0; index < children.length; index++) {
      const result = (children[index] as Evaluate)(input);
      if (result === 0) continue;
      if ((result & UNKNOWN) === 0) return result;
      acc |= result;
    }
    return acc;
  };
}

/** Kleene `or`: any true child holds; otherwise unknown if any child was unknown. */
function orOf(children: readonly Evaluate[]): Evaluate {
  return (input) => {
    let acc = 0;
    for (let index = 0; index < children.length; index++) {
      const result = (children[index] as Evaluate)(input);
      if (result === 0) return 0;
      acc |= result;
    }
    return acc;
  };
}

/** `not` keeps unknown unknown, so a missing attribute never satisfies an allow through negation. */
function notOf(child: Evaluate, whenHeld: number): Evaluate {
  return (input) => {
    const result = child(input);
    if (result === 0) return whenHeld;
    return result & UNKNOWN ? result : 0;
  };
}

const label = (key: string, value: unknown) => `${key}: ${JSON.stringify(value)}`;

function node(
  kind: CompiledCondition['kind'],
  evaluate: Evaluate,
  path: string,
  text: string,
  children: readonly CompiledCondition[],
  reasons: number,
): CompiledCondition {
  return Object.freeze({ kind, evaluate, reasons: reasons & REASON_MASK, path, label: text, children });
}

function compileSpec(spec: ConditionSpec, path: string): CompiledCondition {
  const parts: CompiledCondition[] = [];
  for (const key of Object.keys(spec) as Key[]) {
    const value = spec[key];
    if (value === undefined) continue;
    const at = `${path}.${key}`;
    if (key === 'and' || key === 'or') {
      const items = (value as ConditionSpec[]).map((item, index) => compileSpec(item, `${at}[${index}]`));
      const evaluate =
        key === 'and' ? andOf(items.map((item) => item.evaluate)) : orOf(items.map((item) => item.evaluate));
      const reasons = items.reduce((bits, item) => bits | item.reasons, 0);
      parts.push(node(key, evaluate, at, key, items, reasons));
    } else if (key === 'not') {
      const inner = compileSpec(value as ConditionSpec, at);
      const held = negatedBits(inner.reasons);
      parts.push(node('not', notOf(inner.evaluate, held), at, 'not', [inner], held | inner.reasons));
    } else {
      const leaf = leafFor(key, value);
      parts.push(node('leaf', leaf.evaluate, at, label(key, value), [], leaf.reasons));
    }
  }
  if (parts.length === 1) return parts[0] as CompiledCondition;
  const reasons = parts.reduce((bits, item) => bits | item.reasons, 0);
  return node('and', andOf(parts.map((part) => part.evaluate)), path, 'and', parts, reasons);
}

const always: Evaluate = () => 0;

/**
 * Compiles rule bodies, sharing one compiled tree among identical bodies: policies
 * repeat rules (the same deny on every route), and sharing keeps the closures the hot
 * path touches few and cache-resident.
 */
export class ConditionCompiler {
  readonly #cache = new Map<string, CompiledCondition>();

  compile(body: RuleBody, path: string): CompiledCondition {
    if (body === true) return node('true', always, path, 'true', [], 0);
    const key = `${path}\u0000${JSON.stringify(body)}`;
    let compiled = this.#cache.get(key);
    if (compiled === undefined) {
      compiled = compileSpec(body, path);
      this.#cache.set(key, compiled);
    }
    return compiled;
  }
}

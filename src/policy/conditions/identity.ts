import { parseDuration } from '../../internal/duration.ts';
import { bit, UNKNOWN } from '../reasons.ts';
import type { ConditionSpec } from '../schema.ts';
import { type Leaf, memberOf } from './leaf.ts';

const UNAUTHENTICATED = bit('user-unauthenticated') | UNKNOWN;
const UNAUTHORIZED = bit('user-unauthorized');
const GROUP_MISSING = bit('group-missing');
const CLAIM_MISMATCH = bit('claim-mismatch');
const CLAIM_MISSING = CLAIM_MISMATCH | UNKNOWN;
const MFA_REQUIRED = bit('mfa-required');
const AUTH_TOO_OLD = bit('auth-too-old');

export function authenticated(): Leaf {
  return { reasons: UNAUTHENTICATED, evaluate: (input) => (input.user === undefined ? UNAUTHENTICATED : 0) };
}

export function userId(ids: readonly string[]): Leaf {
  const members = memberOf(ids);
  return {
    reasons: UNAUTHENTICATED | UNAUTHORIZED,
    evaluate: (input) => {
      const user = input.user;
      if (user === undefined) return UNAUTHENTICATED;
      return members.has(user.id) ? 0 : UNAUTHORIZED;
    },
  };
}

const UPPER = /[A-Z]/;

export function email(addresses: readonly string[]): Leaf {
  const members = memberOf(addresses);
  return {
    reasons: UNAUTHENTICATED | UNAUTHORIZED,
    evaluate: (input) => {
      const address = input.user?.email;
      if (address === undefined) return input.user === undefined ? UNAUTHENTICATED : UNAUTHORIZED | UNKNOWN;
      // Lower-casing allocates; IdPs almost always send lower-case addresses already.
      if (members.has(address)) return 0;
      return UPPER.test(address) && members.has(address.toLowerCase()) ? 0 : UNAUTHORIZED;
    },
  };
}

/**
 * Domains are compared without slicing the address: ending in "@domain" is the same as
 * "the part after the last @ is domain", because a domain never contains "@".
 */
export function emailDomain(domains: readonly string[]): Leaf {
  const suffixes = domains.map((domain) => `@${domain}`);
  const count = suffixes.length;
  const matches = (address: string): boolean => {
    for (let index = 0; index < count; index++) if (address.endsWith(suffixes[index] as string)) return true;
    return false;
  };
  return {
    reasons: UNAUTHENTICATED | UNAUTHORIZED,
    evaluate: (input) => {
      const address = input.user?.email;
      if (address === undefined) return input.user === undefined ? UNAUTHENTICATED : UNAUTHORIZED | UNKNOWN;
      if (matches(address)) return 0;
      return UPPER.test(address) && matches(address.toLowerCase()) ? 0 : UNAUTHORIZED;
    },
  };
}

export function groups(spec: NonNullable<ConditionSpec['groups']>): Leaf {
  const wanted = spec.any ?? spec.all ?? [];
  const count = wanted.length;
  const reasons = UNAUTHENTICATED | GROUP_MISSING;
  if (spec.any !== undefined && count === 1) {
    const only = wanted[0] as string;
    return {
      reasons,
      evaluate: (input) => {
        const user = input.user;
        if (user === undefined) return UNAUTHENTICATED;
        return user.groups.includes(only) ? 0 : GROUP_MISSING;
      },
    };
  }
  if (spec.any !== undefined) {
    // Users hold few groups and rules name few: a nested scan beats hashing until both grow.
    const set = count > 8 ? new Set(wanted) : undefined;
    return {
      reasons,
      evaluate: (input) => {
        const user = input.user;
        if (user === undefined) return UNAUTHENTICATED;
        const held = user.groups;
        if (set !== undefined) {
          for (let index = 0; index < held.length; index++) if (set.has(held[index] as string)) return 0;
          return GROUP_MISSING;
        }
        for (let index = 0; index < count; index++) if (held.includes(wanted[index] as string)) return 0;
        return GROUP_MISSING;
      },
    };
  }
  return {
    reasons,
    evaluate: (input) => {
      const user = input.user;
      if (user === undefined) return UNAUTHENTICATED;
      const held = user.groups;
      for (let index = 0; index < count; index++)
        if (!held.includes(wanted[index] as string)) return GROUP_MISSING;
      return 0;
    },
  };
}

type Scalar = string | number | boolean;

/** Reads a dotted claim path ("org.department"); undefined when any step is missing. */
function claimAt(claims: Readonly<Record<string, unknown>> | undefined, steps: readonly string[]): unknown {
  let value: unknown = claims;
  for (const step of steps) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, step)) return undefined;
    value = (value as Record<string, unknown>)[step];
  }
  return value;
}

export function claim(spec: NonNullable<ConditionSpec['claim']>): Leaf {
  const steps = spec.path.split('.');
  const accepted: readonly Scalar[] = spec.in ?? [spec.equals as Scalar];
  // An array claim (e.g. "roles") matches when any of its elements is accepted.
  const matches = (value: unknown): boolean =>
    Array.isArray(value)
      ? value.some((element) => accepted.includes(element as Scalar))
      : accepted.includes(value as Scalar);
  return {
    reasons: UNAUTHENTICATED | CLAIM_MISSING,
    evaluate: (input) => {
      const user = input.user;
      if (user === undefined) return UNAUTHENTICATED;
      const value = claimAt(user.claims, steps);
      if (value === undefined || value === null) return CLAIM_MISSING;
      return matches(value) ? 0 : CLAIM_MISMATCH;
    },
  };
}

export function amr(spec: { any?: readonly string[]; all?: readonly string[] }): Leaf {
  const wanted = spec.any ?? spec.all ?? [];
  const any = spec.any !== undefined;
  return {
    reasons: UNAUTHENTICATED | MFA_REQUIRED | UNKNOWN,
    evaluate: (input) => {
      const user = input.user;
      if (user === undefined) return UNAUTHENTICATED;
      const methods = user.amr;
      if (methods === undefined) return MFA_REQUIRED | UNKNOWN;
      if (any) {
        for (let index = 0; index < wanted.length; index++)
          if (methods.includes(wanted[index] as string)) return 0;
        return MFA_REQUIRED;
      }
      for (let index = 0; index < wanted.length; index++)
        if (!methods.includes(wanted[index] as string)) return MFA_REQUIRED;
      return 0;
    },
  };
}

/** `mfa: true`: the IdP reported multi-factor authentication (RFC 8176 `mfa`). */
export function mfa(): Leaf {
  return amr({ any: ['mfa'] });
}

export function authAge(maxAge: string): Leaf {
  const limit = parseDuration(maxAge) as number;
  return {
    reasons: UNAUTHENTICATED | AUTH_TOO_OLD | UNKNOWN,
    evaluate: (input) => {
      const user = input.user;
      if (user === undefined) return UNAUTHENTICATED;
      const at = user.authTime;
      if (at === undefined) return AUTH_TOO_OLD | UNKNOWN;
      return input.now - at <= limit ? 0 : AUTH_TOO_OLD;
    },
  };
}

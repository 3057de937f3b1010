import { bit, UNKNOWN } from '../reasons.ts';
import type { ConditionSpec } from '../schema.ts';
import { globToRegExp } from './glob.ts';
import { type Leaf, memberOf } from './leaf.ts';

const METHOD = bit('method-denied');
const PATH = bit('path-denied');
const HEADER = bit('header-mismatch');

const many = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

/** Methods are compared upper-case, as Node reports them. */
export function method(methods: readonly string[]): Leaf {
  const members = memberOf(methods);
  return { reasons: METHOD, evaluate: (input) => (members.has(input.method) ? 0 : METHOD) };
}

/**
 * `path: { prefix | glob | equals }`. A prefix is a plain string prefix, the way nginx
 * reads `location /admin`: it also covers `/administrator`; write `/admin/` to stop at
 * the folder. Paths are case-sensitive and must arrive normalized (no `..`, no `//`).
 */
export function path(spec: NonNullable<ConditionSpec['path']>): Leaf {
  if (spec.equals !== undefined) {
    const members = memberOf(many(spec.equals));
    return { reasons: PATH, evaluate: (input) => (members.has(input.path) ? 0 : PATH) };
  }
  if (spec.prefix !== undefined) {
    const prefixes = many(spec.prefix);
    if (prefixes.length === 1) {
      const only = prefixes[0] as string;
      return { reasons: PATH, evaluate: (input) => (input.path.startsWith(only) ? 0 : PATH) };
    }
    return {
      reasons: PATH,
      evaluate: (input) => {
        const value = input.path;
        for (let index = 0; index < prefixes.length; index++) {
          if (value.startsWith(prefixes[index] as string)) return 0;
        }
        return PATH;
      },
    };
  }
  const patterns = many(spec.glob ?? []).map(globToRegExp);
  return {
    reasons: PATH,
    evaluate: (input) => {
      for (let index = 0; index < patterns.length; index++) {
        if ((patterns[index] as RegExp).test(input.path)) return 0;
      }
      return PATH;
    },
  };
}

/** `header: { name, equals | in }`; names are lower-case, values compared exactly. */
export function header(spec: NonNullable<ConditionSpec['header']>): Leaf {
  const name = spec.name;
  const members = memberOf(spec.in ?? [spec.equals as string]);
  return {
    reasons: HEADER | UNKNOWN,
    evaluate: (input) => {
      const value = input.headers?.[name];
      if (value === undefined) return HEADER | UNKNOWN;
      return members.has(value) ? 0 : HEADER;
    },
  };
}

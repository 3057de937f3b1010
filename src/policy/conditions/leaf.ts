import type { PolicyInput } from '../types.ts';

/**
 * A compiled condition: 0 when it holds, otherwise the bits of the reasons it failed
 * with, plus UNKNOWN when an attribute it needs was absent.
 */
export type Evaluate = (input: PolicyInput) => number;

export interface Leaf {
  readonly evaluate: Evaluate;
  /** Every reason bit this leaf can report; used to word a `not` and by `policy check`. */
  readonly reasons: number;
}

/** Membership test compiled for its size: a short array scan beats hashing below ~8 entries. */
export function memberOf(values: readonly string[]): (value: string) => boolean {
  if (values.length === 1) {
    const only = values[0];
    return (value) => value === only;
  }
  if (values.length <= 8) return (value) => values.includes(value);
  const set = new Set(values);
  return (value) => set.has(value);
}

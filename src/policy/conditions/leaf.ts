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

/**
 * A set of strings tested for membership. One class (not a closure per size) keeps the
 * call sites monomorphic so the JIT inlines them; a short array scan beats hashing below
 * ~8 entries.
 */
export class Members {
  readonly #list: readonly string[];
  readonly #set: ReadonlySet<string> | undefined;

  constructor(values: readonly string[]) {
    this.#list = [...values];
    this.#set = values.length > 8 ? new Set(values) : undefined;
  }

  has(value: string): boolean {
    const set = this.#set;
    return set === undefined ? this.#list.includes(value) : set.has(value);
  }
}

export function memberOf(values: readonly string[]): Members {
  return new Members(values);
}

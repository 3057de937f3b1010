import { readFile } from 'node:fs/promises';
import { isVigilError, VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { type CompiledPolicySet, compilePolicies } from './compile.ts';
import { type PolicyDocument, parsePolicyText } from './parse.ts';
import type { Decision, PolicyInput, RouteSpec } from './types.ts';

/** Files are small; a read slower than this means a stuck mount, and the old set keeps serving. */
export const POLICY_READ_TIMEOUT_MS = 5_000;

/**
 * Holds the policy set that serves decisions. `reload` builds a new set completely
 * before swapping one reference, so a decision sees either the old set or the new
 * one; a set that fails to parse or compile never replaces the one serving.
 */
export class PolicyStore {
  #current: CompiledPolicySet;
  readonly #clock: Clock;
  #routes: readonly RouteSpec[] | undefined;

  constructor(options: { clock?: Clock; routes?: readonly RouteSpec[] } = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#routes = options.routes;
    // Until the first good load there is nothing routed: every request is denied with no-route.
    this.#current = compilePolicies([], { clock: this.#clock, routes: [] });
  }

  get current(): CompiledPolicySet {
    return this.#current;
  }

  decide(input: PolicyInput, options?: { explain?: boolean }): Decision {
    return this.#current.decide(input, options);
  }

  /**
   * Reads, validates and compiles `files`, then swaps. Returns the error (file:line:field)
   * instead of throwing, and keeps the last good set serving when there is one.
   * `routes`, when given, replaces the route table (e.g. after vigil.yaml changed).
   */
  async reload(files: readonly string[], routes?: readonly RouteSpec[]): Promise<VigilError | null> {
    try {
      const documents: PolicyDocument[] = await Promise.all(
        files.map(async (file) => {
          let text: string;
          try {
            text = await readFile(file, {
              encoding: 'utf8',
              signal: AbortSignal.timeout(POLICY_READ_TIMEOUT_MS),
            });
          } catch (error) {
            throw new VigilError('ERR_POLICY_INVALID', `${file}: cannot read policy file`, { cause: error });
          }
          return parsePolicyText(text, file);
        }),
      );
      const nextRoutes = routes ?? this.#routes;
      this.#current = compilePolicies(documents, { clock: this.#clock, routes: nextRoutes });
      this.#routes = nextRoutes;
      return null;
    } catch (error) {
      if (isVigilError(error)) return error;
      return new VigilError('ERR_POLICY_INVALID', `policy reload failed: ${String(error)}`, { cause: error });
    }
  }

  /** Swaps in an already compiled set (e.g. compiled by the config loader). */
  replace(set: CompiledPolicySet): void {
    this.#current = set;
  }
}

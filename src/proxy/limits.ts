import type { WindowCounter } from './rate-limit.ts';

export interface LimitSettings {
  /** Requests one identity may make per window; 0 turns the limit off. */
  perIdentity: number;
  /** Requests one source IP may make per window; 0 turns the limit off. */
  perSource: number;
  /** Denials from one source IP within a lockout window that lock it out; 0 turns lockout off. */
  lockoutDenials: number;
}

export type LimitVerdict = { limited: false } | { limited: true; error: 'rate-limited' | 'locked-out' };

const OK: LimitVerdict = Object.freeze({ limited: false });
const RATE_LIMITED: LimitVerdict = Object.freeze({ limited: true, error: 'rate-limited' });
const LOCKED_OUT: LimitVerdict = Object.freeze({ limited: true, error: 'locked-out' });

/**
 * Rate limits per identity and per source, and a lockout of sources that keep being
 * denied (the seeds' brute force: N denials in a window). The denial counter must have
 * `lockAt: lockoutDenials` (checked here): a locked-out source then stays refused for a
 * whole denial window from the denial that locked it, not only to the end of the fixed
 * window that counted it. With RedisWindowCounter every replica refuses it within one
 * sync, to the same end, not only those that counted its denials.
 */
export class AccessLimiter {
  readonly #requests: WindowCounter;
  readonly #denials: WindowCounter;
  readonly #settings: LimitSettings;

  constructor(counters: { requests: WindowCounter; denials: WindowCounter }, settings: LimitSettings) {
    if (settings.lockoutDenials > 0 && counters.denials.lockAt !== settings.lockoutDenials) {
      throw new TypeError(
        `the denial counter must lock at lockoutDenials (${settings.lockoutDenials}), not ${counters.denials.lockAt}`,
      );
    }
    this.#requests = counters.requests;
    this.#denials = counters.denials;
    this.#settings = settings;
  }

  /**
   * Counts the request; says whether it must be refused. `sourceIp` undefined: the client's
   * address is not known (forward-auth from a front proxy not in trusted_proxies), so only
   * the identity's limit applies: counting the front proxy's address would let one user's
   * denials lock everyone out.
   */
  check(identity: string | undefined, sourceIp: string | undefined): LimitVerdict {
    const { lockoutDenials, perSource, perIdentity } = this.#settings;
    if (sourceIp !== undefined) {
      if (lockoutDenials > 0 && this.#denials.peek(sourceIp) >= lockoutDenials) return LOCKED_OUT;
      if (perSource > 0 && this.#requests.hit(`ip:${sourceIp}`) > perSource) return RATE_LIMITED;
    }
    if (perIdentity > 0 && identity !== undefined && this.#requests.hit(`id:${identity}`) > perIdentity) {
      return RATE_LIMITED;
    }
    return OK;
  }

  recordDenial(sourceIp: string): void {
    if (this.#settings.lockoutDenials > 0) this.#denials.hit(sourceIp);
  }

  async close(): Promise<void> {
    await Promise.all([this.#requests.close(), this.#denials.close()]);
  }
}

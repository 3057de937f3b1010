import { createHash } from 'node:crypto';
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { Clock } from '../internal/clock.ts';
import type { Logger } from '../telemetry/index.ts';
import { claimAt, optionalString, stringList } from './claims.ts';
import type { Identity } from './identity.ts';
import { countingJwksFetch } from './jwks-fetch.ts';
import type { IdentityReason } from './reasons.ts';

/** Tokens longer than this are refused before any parsing (a JWT from an IdP is a few KiB). */
export const MAX_TOKEN_BYTES = 16 * 1024;
/** Verified tokens remembered until their `exp`; beyond this the oldest are dropped. */
export const DEFAULT_TOKEN_CACHE_SIZE = 10_000;
/** How long a JWKS fetch may take before the IdP counts as unreachable. */
export const JWKS_TIMEOUT_MS = 5000;
/** Fetched keys are trusted this long without asking the IdP again. */
export const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
/** An unknown `kid` refetches the JWKS at most this often (key rotation, not a DoS lever). */
export const JWKS_COOLDOWN_MS = 30_000;

/** Header parameters that carry or point to a key: never trusted, the token is refused. */
const KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;

export interface TrustedIssuer {
  /** The IdP's name in config. */
  name: string;
  issuer: string;
  audience: string | readonly string[];
  algorithms: readonly string[];
  /** Tolerated clock skew, ms. */
  leewayMs: number;
  /** Required `typ` header, when configured. */
  typ?: string | undefined;
  claims: { user_id: string; email: string; groups: string };
  /** Where keys come from: a remote JWKS URL, or a key getter (tests, local JWKS). */
  keys: URL | JWTVerifyGetKey;
  jwksCacheMaxAgeMs?: number;
  jwksCooldownMs?: number;
}

export type VerifyResult =
  | { identity: Identity; reason?: undefined }
  | { identity?: undefined; reason: IdentityReason };

interface CachedToken {
  identity: Identity;
  /** Token exp in ms; past it the entry is useless. */
  expiresAt: number;
}

/**
 * Verifies bearer JWTs from the configured issuers and remembers verified ones by
 * their sha256 until `exp`, so that the hot path does not verify the same token twice.
 *
 * Checks, in order, each with its own reason: size, shape, header (alg allowlisted per
 * issuer, never `none`, no key in the header), issuer known, `typ`, then jose checks
 * signature against the issuer's JWKS and `iss`, `aud`, `exp`, `nbf`, `iat` with leeway.
 */
export class JwtVerifier {
  readonly #issuers = new Map<string, { trusted: TrustedIssuer; getKey: JWTVerifyGetKey }>();
  readonly #cache = new Map<string, CachedToken>();
  readonly #cacheSize: number;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;

  constructor(
    issuers: readonly TrustedIssuer[],
    options: { clock: Clock; logger?: Logger; cacheSize?: number },
  ) {
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#cacheSize = options.cacheSize ?? DEFAULT_TOKEN_CACHE_SIZE;
    for (const trusted of issuers) this.addIssuer(trusted);
  }

  /** Trusts one more issuer (the dev IdP, known only once it listens). */
  addIssuer(trusted: TrustedIssuer): void {
    if (trusted.algorithms.length === 0) throw new TypeError(`${trusted.name}: algorithms must not be empty`);
    for (const alg of trusted.algorithms) {
      if (alg === 'none' || alg.startsWith('HS')) {
        throw new TypeError(`${trusted.name}: algorithm ${alg} is not allowed for a public-key issuer`);
      }
    }
    if (this.#issuers.has(trusted.issuer)) throw new TypeError(`issuer ${trusted.issuer} configured twice`);
    const getKey =
      trusted.keys instanceof URL
        ? createRemoteJWKSet(trusted.keys, {
            ...countingJwksFetch,
            timeoutDuration: JWKS_TIMEOUT_MS,
            cacheMaxAge: trusted.jwksCacheMaxAgeMs ?? JWKS_CACHE_MAX_AGE_MS,
            cooldownDuration: trusted.jwksCooldownMs ?? JWKS_COOLDOWN_MS,
          })
        : trusted.keys;
    this.#issuers.set(trusted.issuer, { trusted, getKey });
  }

  /**
   * The identity for a cached token, or undefined when it must be verified. Synchronous,
   * for the proxy's hot path.
   */
  cached(token: string): Identity | undefined {
    if (token.length > MAX_TOKEN_BYTES) return undefined;
    const key = hashToken(token);
    const entry = this.#cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#clock.now()) {
      this.#cache.delete(key);
      return undefined;
    }
    return entry.identity;
  }

  /** Verifies a compact JWS; never throws for a bad token, returns the reason instead. */
  async verify(token: string): Promise<VerifyResult> {
    const hit = this.cached(token);
    if (hit) return { identity: hit };
    const result = await this.#verify(token);
    if (result.reason) {
      // The reason and the issuer only: a token (even a refused one) is a credential.
      this.#logger?.debug({ reason: result.reason }, 'bearer token refused');
    }
    return result;
  }

  /** Drops every remembered token (e.g. after a config reload changes issuers). */
  clearCache(): void {
    this.#cache.clear();
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  async #verify(token: string): Promise<VerifyResult> {
    if (token.length > MAX_TOKEN_BYTES) return { reason: 'token-too-large' };
    const parts = token.split('.');
    // An empty signature is let through to the header check so that `alg: none` gets its own reason.
    if (
      parts.length !== 3 ||
      parts.some((part, index) => !(index === 2 ? /^[A-Za-z0-9_-]*$/ : /^[A-Za-z0-9_-]+$/).test(part))
    ) {
      return { reason: 'token-malformed' };
    }
    const header = decodeSegment(parts[0] as string);
    if (!header) return { reason: 'token-malformed' };
    const payload = decodeSegment(parts[1] as string);
    if (!payload) return { reason: 'token-payload-invalid' };
    for (const name of KEY_HEADERS) {
      if (Object.hasOwn(header, name)) return { reason: 'token-key-in-header' };
    }
    const alg = header.alg;
    if (typeof alg === 'string' && alg.toLowerCase() === 'none') return { reason: 'token-unsigned' };
    if (typeof alg !== 'string' || alg.startsWith('HS')) {
      return { reason: 'token-alg-not-allowed' };
    }
    const iss = payload.iss;
    const entry = typeof iss === 'string' ? this.#issuers.get(iss) : undefined;
    if (!entry) return { reason: 'token-issuer-unknown' };
    const { trusted, getKey } = entry;
    if (!trusted.algorithms.includes(alg)) return { reason: 'token-alg-not-allowed' };
    if (trusted.typ !== undefined && !sameTyp(header.typ, trusted.typ))
      return { reason: 'token-typ-mismatch' };

    let verified: JWTPayload;
    try {
      ({ payload: verified } = await jwtVerify(token, getKey, {
        algorithms: [...trusted.algorithms],
        issuer: trusted.issuer,
        audience: typeof trusted.audience === 'string' ? trusted.audience : [...trusted.audience],
        clockTolerance: Math.round(trusted.leewayMs / 1000),
        currentDate: new Date(this.#clock.now()),
        requiredClaims: ['exp'],
        ...(trusted.typ !== undefined ? { typ: trusted.typ } : {}),
      }));
    } catch (error) {
      return { reason: reasonFor(error) };
    }
    const now = this.#clock.now();
    if (typeof verified.iat === 'number' && verified.iat * 1000 > now + trusted.leewayMs) {
      return { reason: 'token-iat-invalid' };
    }
    const subject = optionalString(claimAt(verified, trusted.claims.user_id));
    if (subject === undefined) return { reason: 'token-subject-missing' };
    const expiresAt = (verified.exp as number) * 1000;
    const tokenHash = hashToken(token);
    const identity: Identity = Object.freeze({
      kind: 'bearer',
      key: `bearer:${tokenHash}`,
      userId: `${trusted.name}:${subject}`,
      subject,
      idp: trusted.name,
      email: optionalString(claimAt(verified, trusted.claims.email)),
      groups: Object.freeze(stringList(claimAt(verified, trusted.claims.groups))),
      amr: Object.freeze(stringList(verified.amr)),
      acr: optionalString(verified.acr),
      authTime:
        typeof verified.auth_time === 'number' ? verified.auth_time * 1000 : (verified.iat ?? 0) * 1000,
      expiresAt,
      sessionId: undefined,
      deviceId: undefined,
      claims: Object.freeze({ ...verified }),
    });
    this.#remember(tokenHash, identity, expiresAt);
    return { identity };
  }

  #remember(tokenHash: string, identity: Identity, expiresAt: number): void {
    if (this.#cache.size >= this.#cacheSize) {
      // Drop expired entries first; if none, the oldest inserted (Map keeps insertion order).
      const now = this.#clock.now();
      for (const [key, entry] of this.#cache) {
        if (entry.expiresAt <= now) this.#cache.delete(key);
      }
      if (this.#cache.size >= this.#cacheSize) {
        const oldest = this.#cache.keys().next();
        if (!oldest.done) this.#cache.delete(oldest.value);
      }
    }
    this.#cache.set(tokenHash, { identity, expiresAt });
  }
}

/** sha256 of the token: the cache never holds the credential itself. */
function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 8725 §3.11: typ compares case-insensitively and `application/` may be omitted. */
function sameTyp(actual: unknown, expected: string): boolean {
  if (typeof actual !== 'string') return false;
  const normalize = (text: string) => text.toLowerCase().replace(/^application\//, '');
  return normalize(actual) === normalize(expected);
}

function reasonFor(error: unknown): IdentityReason {
  if (error instanceof errors.JWTExpired) return 'token-expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf':
        return 'token-not-yet-valid';
      case 'iat':
        return 'token-iat-invalid';
      case 'iss':
        return 'token-issuer-mismatch';
      case 'aud':
        return 'token-audience-mismatch';
      case 'typ':
        return 'token-typ-mismatch';
      case 'exp':
        return 'token-expired';
      default:
        return 'token-claim-invalid';
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'token-alg-not-allowed';
  if (error instanceof errors.JWKSNoMatchingKey) return 'token-key-unknown';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'token-signature-invalid';
  if (error instanceof errors.JWKSTimeout) return 'idp-unavailable';
  if (error instanceof errors.JWTInvalid) return 'token-payload-invalid';
  if (error instanceof errors.JWSInvalid) return 'token-malformed';
  if (error instanceof errors.JOSEError) return 'token-invalid';
  // A network failure fetching the JWKS (connection refused, DNS) surfaces as a plain
  // error: the IdP is unreachable and there is no cached key that could decide.
  return 'idp-unavailable';
}

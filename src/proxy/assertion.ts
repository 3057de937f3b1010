import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type Clock, systemClock } from '../internal/clock.ts';
import { type AssertionKeyRing, type AssertionSigningKey, MAX_ASSERTION_TTL_MS } from './assertion-keys.ts';

export interface AssertionClaims {
  sub: string;
  email: string | undefined;
  /** The session's own list: a new list (a refresh changed the groups) signs anew. */
  groups: readonly string[];
  device: string | undefined;
}

export interface AssertionSignerOptions {
  /** `iss` of every assertion: the proxy's public URL. */
  issuer: string;
  /** Assertion lifetime; at most 60 s so a leaked header is soon worthless. */
  ttlMs?: number;
  clock?: Clock;
  /**
   * Keys shared by every replica through the store (the server's). Without, the signer
   * makes its own in memory with rotate() (tests, tools, a single process).
   */
  keys?: AssertionKeyRing;
}

const DEFAULT_TTL_MS = 60_000;
const MAX_TTL_MS = MAX_ASSERTION_TTL_MS;
/** Reuse a cached assertion while at least this share of its lifetime remains. */
const REUSE_WHILE_REMAINING = 0.5;
/** Bound on cached assertions; the cache is dropped whole when full (cheap, rare). */
const CACHE_LIMIT = 50_000;

interface CachedAssertion {
  token: string;
  reuseUntil: number;
  /** What it was signed for: served only while the request's claims are these. */
  claims: AssertionClaims;
}

function sameClaims(a: AssertionClaims, b: AssertionClaims): boolean {
  return a.groups === b.groups && a.sub === b.sub && a.email === b.email && a.device === b.device;
}

/**
 * Signs the `X-Vigil-Assertion` JWT (ES256) that upstreams verify against
 * `/.vigil/jwks.json`. An assertion is signed once per (identity, route) and reused
 * until half its lifetime is gone, so the request path signs almost never.
 * Rotation keeps the previous key published so assertions in flight still verify.
 * With `keys`, the key and the JWKS are the ring's, followed as it changes: the cache is
 * dropped when the current key does, and signing never waits for the store.
 */
export class AssertionSigner {
  readonly #issuer: string;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  readonly #keys: AssertionKeyRing | undefined;
  #current: AssertionSigningKey | undefined;
  #previous: AssertionSigningKey | undefined;
  #jwksBody = '{"keys":[]}';
  /** By audience, then identity: no key string is built (and hashed) per request. */
  readonly #cache = new Map<string, Map<string, CachedAssertion>>();
  #cached = 0;

  constructor(options: AssertionSignerOptions) {
    if (!/^https?:\/\//.test(options.issuer)) throw new TypeError('issuer must be an http(s) URL');
    const ttl = options.ttlMs ?? DEFAULT_TTL_MS;
    if (ttl <= 0 || ttl > MAX_TTL_MS) throw new TypeError(`ttlMs must be in (0, ${MAX_TTL_MS}]`);
    this.#issuer = options.issuer;
    this.#ttlMs = ttl;
    this.#clock = options.clock ?? systemClock;
    const keys = options.keys;
    this.#keys = keys;
    if (keys) {
      this.#adopt(keys);
      keys.onChange(() => this.#adopt(keys));
    }
  }

  #adopt(keys: AssertionKeyRing): void {
    const current = keys.current;
    if (current !== this.#current) {
      this.#current = current;
      this.#clearCache();
    }
    this.#jwksBody = keys.jwksBody;
  }

  /**
   * Makes a new current key; the old one stays published for verification. With a
   * shared ring, the ring rotates for every replica.
   */
  async rotate(): Promise<void> {
    if (this.#keys) return this.#keys.rotate();
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    this.#previous = this.#current;
    this.#current = { kid, privateKey, publicJwk };
    this.#clearCache();
    const keys = [this.#current.publicJwk, ...(this.#previous ? [this.#previous.publicJwk] : [])];
    this.#jwksBody = JSON.stringify({ keys });
  }

  /** The JWKS document, serialized once per rotation. */
  get jwksBody(): string {
    return this.#jwksBody;
  }

  get currentKid(): string | undefined {
    return this.#current?.kid;
  }

  /**
   * The assertion for `identityKey` (e.g. the session id) on `audience` (the route):
   * a cached string when one serves, else a promise of a freshly signed one.
   */
  assertionFor(identityKey: string, audience: string, claims: AssertionClaims): string | Promise<string> {
    const now = this.#clock.now();
    const cached = this.#cache.get(audience)?.get(identityKey);
    if (cached !== undefined && cached.reuseUntil > now && sameClaims(cached.claims, claims))
      return cached.token;
    return this.#sign(identityKey, audience, claims, now);
  }

  async #sign(identityKey: string, audience: string, claims: AssertionClaims, now: number): Promise<string> {
    const key = this.#current;
    if (!key) throw new Error('assertion signer has no key; call rotate() first or pass keys');
    const iat = Math.floor(now / 1000);
    const exp = Math.floor((now + this.#ttlMs) / 1000);
    const token = await new SignJWT({
      ...(claims.email !== undefined ? { email: claims.email } : {}),
      groups: claims.groups,
      ...(claims.device !== undefined ? { device: claims.device } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'vigil-assertion+jwt' })
      .setIssuer(this.#issuer)
      .setAudience(audience)
      .setSubject(claims.sub)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key.privateKey);
    if (this.#cached >= CACHE_LIMIT) this.#clearCache();
    let byIdentity = this.#cache.get(audience);
    if (byIdentity === undefined) {
      byIdentity = new Map();
      this.#cache.set(audience, byIdentity);
    }
    if (!byIdentity.has(identityKey)) this.#cached++;
    byIdentity.set(identityKey, { token, reuseUntil: now + this.#ttlMs * REUSE_WHILE_REMAINING, claims });
    return token;
  }

  #clearCache(): void {
    this.#cache.clear();
    this.#cached = 0;
  }

  /** Drops cached assertions of one identity (after a revocation or group change). */
  forget(identityKey: string): void {
    for (const byIdentity of this.#cache.values()) if (byIdentity.delete(identityKey)) this.#cached--;
  }
}

import { createPrivateKey } from 'node:crypto';
import { createRemoteJWKSet, importPKCS8, type JWTVerifyGetKey } from 'jose';
import * as client from 'openid-client';
import { VigilError } from '../errors.ts';
import { claimAt, optionalString, stringList } from './claims.ts';
import { countingJwksFetch } from './jwks-fetch.ts';
import { JWKS_CACHE_MAX_AGE_MS, JWKS_COOLDOWN_MS, JWKS_TIMEOUT_MS } from './jwt.ts';
import type { LoginFailureReason } from './reasons.ts';
import type { RefreshOutcome } from './sessions.ts';

/** Seconds any request to an IdP (discovery, token, userinfo) may take. */
export const IDP_TIMEOUT_S = 10;
/** After a failed discovery, the next login waits this long before asking again. */
const DISCOVERY_RETRY_MS = 5000;

export interface OidcProviderOptions {
  name: string;
  issuer: string;
  clientId: string;
  authMethod: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  clientSecret?: string | undefined;
  /** PKCS#8 PEM, for private_key_jwt. */
  privateKeyPem?: string | undefined;
  scopes: readonly string[];
  claims: { user_id: string; email: string; groups: string };
  algorithms: readonly string[];
  leewayMs: number;
}

/** What a successful login yields, mapped from the ID token (and userinfo when needed). */
export interface LoginResult {
  subject: string;
  email: string | undefined;
  groups: string[];
  amr: string[];
  acr: string | undefined;
  authTime: number;
  claims: Record<string, unknown>;
  refreshToken: string | undefined;
}

export interface LoginChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** OIDC max_age sent for a route with reauth_after: the IdP must have authenticated the user this recently. */
  maxAgeS?: number | undefined;
}

/**
 * One OpenID Connect provider: discovery (retried lazily, so that an IdP down at start
 * does not keep Vigil from starting; logins fail closed meanwhile), the authorization
 * code flow with PKCE S256, state and nonce, and refresh.
 */
export class OidcProvider {
  readonly options: OidcProviderOptions;
  #config: Promise<client.Configuration> | undefined;
  #failedAt = 0;
  #jwks: JWTVerifyGetKey | undefined;

  constructor(options: OidcProviderOptions) {
    this.options = options;
    if (options.authMethod === 'private_key_jwt' && !options.privateKeyPem) {
      throw new VigilError(
        'ERR_IDENTITY_CONFIG',
        `identity provider ${options.name}: private_key_jwt needs private_key_file`,
      );
    }
    if (options.authMethod !== 'private_key_jwt' && !options.clientSecret) {
      throw new VigilError(
        'ERR_IDENTITY_CONFIG',
        `identity provider ${options.name}: ${options.authMethod} needs client_secret_file`,
      );
    }
  }

  get name(): string {
    return this.options.name;
  }

  /** The discovered configuration; throws ERR_IDENTITY_IDP_UNAVAILABLE when the IdP does not answer. */
  async configuration(): Promise<client.Configuration> {
    if (!this.#config) {
      if (Date.now() - this.#failedAt < DISCOVERY_RETRY_MS) throw this.#unavailable(undefined);
      this.#config = this.#discover().catch((error: unknown) => {
        this.#config = undefined;
        this.#failedAt = Date.now();
        throw this.#unavailable(error);
      });
    }
    return this.#config;
  }

  /** Keys for bearer JWTs of this issuer, from the discovered jwks_uri, cached with rotation handling. */
  readonly bearerKeys: JWTVerifyGetKey = async (header, token) => {
    if (!this.#jwks) {
      const uri = (await this.configuration()).serverMetadata().jwks_uri;
      if (!uri) throw this.#unavailable(new Error('no jwks_uri in the discovery document'));
      this.#jwks = createRemoteJWKSet(new URL(uri), {
        ...countingJwksFetch,
        timeoutDuration: JWKS_TIMEOUT_MS,
        cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
        cooldownDuration: JWKS_COOLDOWN_MS,
      });
    }
    return this.#jwks(header, token);
  };

  /** Starts a login: the URL to send the browser to and the checks to keep for the callback. */
  async beginLogin(
    redirectUri: string,
    options: { maxAgeS?: number | undefined } = {},
  ): Promise<{ url: URL; checks: LoginChecks }> {
    const config = await this.configuration();
    const checks: LoginChecks = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier: client.randomPKCECodeVerifier(),
      ...(options.maxAgeS !== undefined ? { maxAgeS: Math.floor(options.maxAgeS) } : {}),
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.options.scopes.join(' '),
      response_type: 'code',
      state: checks.state,
      nonce: checks.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
      // Without max_age the IdP's own SSO session would answer at once and a route's
      // sign-in frequency would not make the user authenticate again.
      ...(checks.maxAgeS !== undefined ? { max_age: String(checks.maxAgeS) } : {}),
    });
    return { url, checks };
  }

  /** Exchanges the code (state already checked by the caller); the failure reason otherwise. */
  async finishLogin(
    callbackUrl: URL,
    redirectUri: string,
    checks: LoginChecks,
  ): Promise<LoginResult | { reason: LoginFailureReason }> {
    let config: client.Configuration;
    try {
      config = await this.configuration();
    } catch {
      return { reason: 'idp-unavailable' };
    }
    // openid-client compares the callback URL's origin and path to redirect_uri; the
    // proxy may see the request under its own address, so the query is moved over.
    const current = new URL(redirectUri);
    current.search = callbackUrl.search;
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
        ...(checks.maxAgeS !== undefined ? { maxAge: checks.maxAgeS } : {}),
      });
    } catch (error) {
      return { reason: loginReason(error) };
    }
    const idClaims = tokens.claims();
    if (!idClaims) return { reason: 'login-token-invalid' };
    if (!this.options.algorithms.includes(idTokenAlg(tokens.id_token)))
      return { reason: 'login-token-invalid' };
    let claims: Record<string, unknown> = { ...idClaims };
    if (claimAt(claims, this.options.claims.groups) === undefined && tokens.access_token) {
      claims = await this.#withUserInfo(config, tokens.access_token, idClaims.sub, claims);
    }
    const subject = optionalString(claimAt(claims, this.options.claims.user_id));
    if (subject === undefined) return { reason: 'login-token-invalid' };
    return {
      subject,
      email: optionalString(claimAt(claims, this.options.claims.email)),
      groups: stringList(claimAt(claims, this.options.claims.groups)),
      amr: stringList(claims.amr),
      acr: optionalString(claims.acr),
      authTime: typeof claims.auth_time === 'number' ? claims.auth_time * 1000 : Date.now(),
      claims: pickClaims(claims),
      refreshToken: tokens.refresh_token,
    };
  }

  /** Uses a refresh token to read the user's current groups; `denied` when the IdP refuses. */
  async refresh(refreshToken: string): Promise<RefreshOutcome> {
    let config: client.Configuration;
    try {
      config = await this.configuration();
    } catch {
      return { kind: 'unavailable' };
    }
    try {
      const tokens = await client.refreshTokenGrant(config, refreshToken);
      let claims: Record<string, unknown> = { ...(tokens.claims() ?? {}) };
      if (claimAt(claims, this.options.claims.groups) === undefined && tokens.access_token) {
        claims = await this.#withUserInfo(config, tokens.access_token, client.skipSubjectCheck, claims);
      }
      const amr = stringList(claims.amr);
      return {
        kind: 'updated',
        groups: stringList(claimAt(claims, this.options.claims.groups)),
        ...(amr.length > 0 ? { amr } : {}),
        refreshToken: tokens.refresh_token ?? refreshToken,
      };
    } catch (error) {
      if (
        error instanceof client.ResponseBodyError &&
        (error.error === 'invalid_grant' || error.status === 401)
      ) {
        return { kind: 'denied' };
      }
      return { kind: 'unavailable' };
    }
  }

  async #withUserInfo(
    config: client.Configuration,
    accessToken: string,
    subject: string | typeof client.skipSubjectCheck,
    claims: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    if (!config.serverMetadata().userinfo_endpoint) return claims;
    try {
      const info = await client.fetchUserInfo(config, accessToken, subject);
      // Userinfo is the fresher source for attributes; the subject stays the ID token's.
      return { ...claims, ...pickDefined(info) };
    } catch {
      return claims;
    }
  }

  async #discover(): Promise<client.Configuration> {
    const { authMethod, clientSecret, privateKeyPem, clientId } = this.options;
    const auth =
      authMethod === 'private_key_jwt'
        ? client.PrivateKeyJwt(await importClientKey(privateKeyPem as string))
        : authMethod === 'client_secret_post'
          ? client.ClientSecretPost(clientSecret)
          : client.ClientSecretBasic(clientSecret);
    const issuer = new URL(this.options.issuer);
    // Plain http is accepted only on loopback (the dev IdP, tests); never across a network.
    const insecure = issuer.protocol === 'http:' && isLoopback(issuer.hostname);
    return client.discovery(
      issuer,
      clientId,
      { id_token_signed_response_alg: this.options.algorithms[0] },
      auth,
      {
        timeout: IDP_TIMEOUT_S,
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
      },
    );
  }

  #unavailable(cause: unknown): VigilError {
    return new VigilError(
      'ERR_IDENTITY_IDP_UNAVAILABLE',
      `identity provider ${this.options.name} (${this.options.issuer}) is unreachable${cause instanceof Error ? `: ${cause.message}` : ''}`,
      { status: 503, publicMessage: 'the identity provider is unreachable; try again shortly', cause },
    );
  }
}

/** The private_key_jwt signing key: RS256 for RSA, ES256 for P-256, EdDSA for Ed25519. */
async function importClientKey(pem: string) {
  const type = createPrivateKey(pem).asymmetricKeyType;
  const alg = type === 'ec' ? 'ES256' : type === 'ed25519' ? 'EdDSA' : 'RS256';
  return importPKCS8(pem, alg);
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function idTokenAlg(idToken: string | undefined): string {
  try {
    const header: unknown = JSON.parse(
      Buffer.from((idToken ?? '').split('.')[0] ?? '', 'base64url').toString('utf8'),
    );
    return typeof header === 'object' && header !== null ? String((header as { alg?: unknown }).alg) : '';
  } catch {
    return '';
  }
}

function loginReason(error: unknown): LoginFailureReason {
  if (error instanceof client.AuthorizationResponseError) return 'login-idp-error';
  if (error instanceof client.ResponseBodyError)
    return error.error === 'invalid_grant' ? 'login-code-rejected' : 'login-idp-error';
  const code = (error as { code?: unknown }).code;
  if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && comparedClaim(error) === 'nonce')
    return 'login-nonce-mismatch';
  if (typeof code === 'string' && code.startsWith('OAUTH_')) return 'login-token-invalid';
  if (
    error instanceof Error &&
    (error.name === 'TimeoutError' || error.name === 'AbortError' || error instanceof TypeError)
  ) {
    return 'idp-unavailable';
  }
  return 'login-token-invalid';
}

/** The claim a failed comparison was about; openid-client wraps oauth4webapi's error in a cause. */
function comparedClaim(error: unknown): unknown {
  let current: unknown = error;
  for (let depth = 0; depth < 3 && typeof current === 'object' && current !== null; depth++) {
    const claim = (current as { claim?: unknown }).claim;
    if (claim !== undefined) return claim;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Claims kept with a session: identity attributes only, not tokens or protocol noise. */
function pickClaims(claims: Record<string, unknown>): Record<string, unknown> {
  const drop = new Set(['nonce', 'at_hash', 'c_hash', 's_hash', 'sid', 'jti', 'azp']);
  return Object.fromEntries(Object.entries(claims).filter(([key]) => !drop.has(key)));
}

function pickDefined(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(values).filter(([key, value]) => value !== undefined && key !== 'sub'),
  );
}

import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { IdentityProviderConfig, RouteConfig, VigilConfig } from '../config/index.ts';
import { VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { escapeHtml } from '../internal/html.ts';
import { type ApiRoute, sendJson } from '../internal/http.ts';
import { constantTimeEqual } from '../internal/secrets.ts';
import type { Store } from '../store/index.ts';
import { Counter, Gauge, type Logger, type Registry } from '../telemetry/index.ts';
import { clearCookie, readCookie, setCookie } from './cookies.ts';
import { DEFAULT_DEV_USERS, type DevIdp, startDevIdp } from './dev-idp.ts';
import type { Identity } from './identity.ts';
import { jwksFetches } from './jwks-fetch.ts';
import { JwtVerifier, MAX_TOKEN_BYTES, type TrustedIssuer } from './jwt.ts';
import { OidcProvider } from './oidc.ts';
import type { IdentityReason, LoginFailureReason } from './reasons.ts';
import { safeReturnPath } from './return-path.ts';
import { Sealer } from './seal.ts';
import { resolveSessionKey } from './session-key.ts';
import { SessionManager } from './sessions.ts';

/** How long a started login may take to come back to the callback. */
export const LOGIN_STATE_TTL_MS = 10 * 60_000;
/** Used login states remembered (against replays) at most; they expire with the login TTL anyway. */
const USED_STATES_MAX = 10_000;
/** Proxy paths the identity capability serves. */
export const IDENTITY_PATHS = [
  '/.vigil/login',
  '/.vigil/callback',
  '/.vigil/logout',
  '/.vigil/whoami',
] as const;
const HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

export type AuthResult =
  | { identity: Identity; reason?: undefined }
  | { identity?: undefined; reason: IdentityReason };

export interface AuthenticateOptions {
  /** The route's `reauth_after`, ms: a session whose login is older is refused. */
  reauthAfterMs?: number | undefined;
}

/** The identity capability as the server and the proxy use it. */
export interface IdentityService {
  /**
   * Who sent the request: a Vigil session cookie or an `Authorization: Bearer` JWT.
   * Synchronous (a plain value) for a cookie and for a bearer token already verified;
   * a promise only when a new token has to be verified. Never throws for bad input.
   */
  authenticate(
    request: { headers: IncomingHttpHeaders },
    options?: AuthenticateOptions,
  ): AuthResult | Promise<AuthResult>;
  /**
   * `authenticate` for callers that cannot wait: a new bearer token is verified in the
   * background (so the next request finds it cached) and this call returns
   * `token-not-yet-verified`, which denies.
   */
  authenticateSync(request: { headers: IncomingHttpHeaders }, options?: AuthenticateOptions): AuthResult;
  /** The identity paths as handlers for the proxy's reserved-path table. */
  reservedHandlers(
    secure: boolean,
  ): Map<string, (request: IncomingMessage, response: ServerResponse) => void>;
  /**
   * Serves `/.vigil/login`, `/.vigil/callback`, `/.vigil/logout` and `/.vigil/whoami`
   * on the proxy listener; false when the path is none of them.
   */
  handle(request: IncomingMessage, response: ServerResponse, context: { secure: boolean }): Promise<boolean>;
  /** Admin API: list and revoke sessions. */
  readonly adminRoutes: readonly ApiRoute[];
  readonly sessions: SessionManager;
  readonly verifier: JwtVerifier;
  readonly providerNames: readonly string[];
  /** Once the proxy listens: starts the dev IdP (when configured) with the callback URLs it must allow. */
  attach(proxyUrl: string): Promise<void>;
  close(): Promise<void>;
}

export interface CreateIdentityOptions {
  config: Readonly<VigilConfig>;
  store: Store;
  logger: Logger;
  dataDir: string;
  clock?: Clock;
  /** Registry for login, bearer verification and live session metrics. */
  metrics?: Registry;
}

interface LoginState {
  state: string;
  nonce: string;
  codeVerifier: string;
  idp: string;
  returnTo: string;
  redirectUri: string;
  startedAt: number;
  maxAgeS?: number | undefined;
}

/** Builds the identity capability: providers, bearer verifier, sessions, login handlers. */
export async function createIdentity(options: CreateIdentityOptions): Promise<IdentityService> {
  const { config, store, logger, dataDir } = options;
  const clock = options.clock ?? systemClock;
  const cookieName = config.session.cookie_name;
  const loginCookieName = `${cookieName}_login`;
  const { key } = resolveSessionKey(config.session.secret_file?.reveal(), dataDir);
  const loginSealer = new Sealer(key, 'login state');
  const providers = new Map<string, OidcProvider>();
  const refreshIntervals = new Map<string, number>();
  for (const idp of config.identity_providers) {
    providers.set(idp.name, providerFor(idp));
    refreshIntervals.set(idp.name, idp.refresh_interval);
  }
  // Several providers may be clients of one issuer; a bearer token names only the issuer,
  // so the first provider of each issuer is the one bearer tokens are verified and named by.
  const bearerIssuers = new Map<string, TrustedIssuer>();
  for (const idp of config.identity_providers) {
    if (!bearerIssuers.has(idp.issuer)) {
      bearerIssuers.set(idp.issuer, trustedIssuer(idp, providers.get(idp.name) as OidcProvider));
    }
  }
  const verifier = new JwtVerifier([...bearerIssuers.values()], { clock, logger });
  const sessions = new SessionManager({
    store,
    clock,
    logger,
    key,
    policy: { maxAgeMs: config.session.max_age, idleTimeoutMs: config.session.idle_timeout },
    refresher: async (idp, refreshToken) => {
      const provider = providers.get(idp);
      return provider ? provider.refresh(refreshToken) : { kind: 'unavailable' };
    },
    refreshIntervalMs: (idp) => refreshIntervals.get(idp) ?? 15 * 60_000,
  });
  await sessions.start();
  const registers = options.metrics ? [options.metrics] : [];
  // Results are the closed reason unions, so label cardinality stays bounded.
  const logins = options.metrics
    ? new Counter({
        name: 'vigil_identity_logins_total',
        help: 'Login callbacks by result (ok or the login failure reason)',
        labelNames: ['result'],
        registers,
      })
    : undefined;
  const verifications = options.metrics
    ? new Counter({
        name: 'vigil_identity_bearer_verifications_total',
        help: 'Bearer JWT verifications (cache misses) by result (ok or the reason)',
        labelNames: ['result'],
        registers,
      })
    : undefined;
  if (options.metrics) {
    new Gauge({
      name: 'vigil_identity_live_sessions',
      help: 'Live sessions held in memory by this replica',
      registers,
      collect() {
        this.set(sessions.size);
      },
    });
    new Counter({
      name: 'vigil_identity_jwks_fetches_total',
      help: 'JWKS documents fetched from identity providers, by result',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        this.labels('ok').inc(jwksFetches.ok);
        this.labels('error').inc(jwksFetches.error);
      },
    });
    new Gauge({
      name: 'vigil_identity_verified_tokens_cached',
      help: 'Verified bearer tokens remembered until their exp',
      registers,
      collect() {
        this.set(verifier.cacheSize);
      },
    });
  }
  const usedStates = new Map<string, number>();
  let devIdp: DevIdp | undefined;

  function authenticate(
    request: { headers: IncomingHttpHeaders },
    authOptions: AuthenticateOptions = {},
  ): AuthResult | Promise<AuthResult> {
    const authorization = request.headers.authorization;
    if (typeof authorization === 'string' && /^bearer /i.test(authorization)) {
      const token = authorization.slice(7).trim();
      if (token.length > MAX_TOKEN_BYTES) return { reason: 'token-too-large' };
      const hit = verifier.cached(token);
      if (hit) return { identity: hit };
      return verifier.verify(token).then((result) => {
        verifications?.labels(result.reason ?? 'ok').inc();
        return result;
      });
    }
    const cookie = readCookie(request.headers.cookie, cookieName);
    if (cookie !== undefined) return sessions.lookup(cookie, { reauthAfterMs: authOptions.reauthAfterMs });
    return { reason: 'credential-missing' };
  }

  function fail(response: ServerResponse, reason: LoginFailureReason, status = 400): void {
    const requestId = randomUUID();
    logger.info({ reason, request_id: requestId }, 'login refused');
    logins?.labels(reason).inc();
    sendJson(
      response,
      status,
      { error: 'login-failed', reason, request_id: requestId },
      {
        'set-cookie': clearCookie(loginCookieName, '/.vigil/'),
      },
    );
  }

  async function login(
    request: IncomingMessage,
    response: ServerResponse,
    url: URL,
    secure: boolean,
  ): Promise<void> {
    const rd = url.searchParams.get('rd');
    const returnTo = rd === null ? '/' : safeReturnPath(rd);
    if (returnTo === undefined) return fail(response, 'login-return-invalid');
    const host = request.headers.host ?? '';
    if (!HOST.test(host)) return fail(response, 'login-return-invalid');
    const route = routeOf(host, returnTo);
    const name =
      url.searchParams.get('idp') ??
      route?.idp ??
      (providers.size === 1 ? [...providers.keys()][0] : undefined);
    if (name === undefined) {
      if (providers.size === 0) return fail(response, 'login-idp-unknown', 404);
      sendHtml(response, 200, chooser([...providers.keys()], returnTo));
      return;
    }
    const provider = providers.get(name);
    if (!provider) return fail(response, 'login-idp-unknown', 404);
    const redirectUri = `${secure ? 'https' : 'http'}://${host}/.vigil/callback`;
    let started: Awaited<ReturnType<OidcProvider['beginLogin']>>;
    try {
      started = await provider.beginLogin(redirectUri, {
        maxAgeS: route?.reauth_after === undefined ? undefined : route.reauth_after / 1000,
      });
    } catch (error) {
      logger.warn({ err: error, idp: name }, 'login could not start');
      return fail(response, 'idp-unavailable', 503);
    }
    const state: LoginState = { ...started.checks, idp: name, returnTo, redirectUri, startedAt: clock.now() };
    response.writeHead(302, {
      location: started.url.href,
      'set-cookie': setCookie(loginCookieName, loginSealer.seal(JSON.stringify(state)), {
        path: '/.vigil/',
        maxAgeS: LOGIN_STATE_TTL_MS / 1000,
      }),
      'cache-control': 'no-store',
    });
    response.end();
  }

  async function callback(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const sealed = readCookie(request.headers.cookie, loginCookieName);
    const opened = sealed === undefined ? undefined : loginSealer.open(sealed);
    const state = opened === undefined ? undefined : parseLoginState(opened);
    if (!state) return fail(response, 'login-state-missing');
    if (clock.now() - state.startedAt > LOGIN_STATE_TTL_MS) return fail(response, 'login-state-expired');
    const presented = url.searchParams.get('state');
    if (presented === null || !constantTimeEqual(presented, state.state))
      return fail(response, 'login-state-mismatch');
    if (usedStates.has(state.state)) return fail(response, 'login-state-replayed');
    rememberState(state.state);
    const provider = providers.get(state.idp);
    if (!provider) return fail(response, 'login-idp-unknown', 404);
    const result = await provider.finishLogin(url, state.redirectUri, state);
    if ('reason' in result)
      return fail(response, result.reason, result.reason === 'idp-unavailable' ? 503 : 400);
    const created = await sessions.create({
      idp: state.idp,
      subject: result.subject,
      email: result.email,
      groups: result.groups,
      amr: result.amr,
      acr: result.acr,
      authTime: result.authTime,
      claims: result.claims,
      refreshToken: result.refreshToken,
    });
    logger.info({ idp: state.idp, user: `${state.idp}:${result.subject}`, session: created.id }, 'login');
    logins?.labels('ok').inc();
    response.writeHead(302, {
      location: state.returnTo,
      'set-cookie': [
        setCookie(cookieName, created.cookie, { maxAgeS: config.session.max_age / 1000 }),
        clearCookie(loginCookieName, '/.vigil/'),
      ],
      'cache-control': 'no-store',
    });
    response.end();
  }

  async function logout(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const cookie = readCookie(request.headers.cookie, cookieName);
    if (cookie !== undefined) {
      // Only on POST: a link (a top-level GET carries Lax cookies) must not be able to
      // end every session of the user.
      const everywhere = request.method === 'POST' && url.searchParams.get('everywhere') === '1';
      const found = sessions.lookup(cookie);
      if (everywhere && found.identity) {
        await sessions.revokeUser(found.identity.userId, 'logout-everywhere');
      } else {
        const id = sessions.sessionIdOf(cookie);
        if (id !== undefined) await sessions.revoke(id, 'logout');
      }
    }
    const returnTo = safeReturnPath(url.searchParams.get('rd'));
    const headers = { 'set-cookie': clearCookie(cookieName), 'cache-control': 'no-store' };
    if (returnTo !== undefined) {
      response.writeHead(302, { ...headers, location: returnTo });
      response.end();
      return;
    }
    sendHtml(response, 200, '<h1>Signed out</h1>', headers);
  }

  async function whoami(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const result = await authenticate(request);
    if (!result.identity) {
      sendJson(response, 401, { error: 'unauthenticated', reason: result.reason });
      return;
    }
    const identity = result.identity;
    sendJson(response, 200, {
      kind: identity.kind,
      user_id: identity.userId,
      idp: identity.idp,
      email: identity.email ?? null,
      groups: identity.groups,
      amr: identity.amr,
      acr: identity.acr ?? null,
      session_id: identity.sessionId ?? null,
      auth_time: new Date(identity.authTime).toISOString(),
      expires_at: new Date(identity.expiresAt).toISOString(),
    });
  }

  /** The configured route a return path belongs to (longest path prefix on this host), for its idp and reauth_after. */
  function routeOf(host: string, path: string): RouteConfig | undefined {
    let best: RouteConfig | undefined;
    let bestLength = -1;
    for (const candidate of config.routes) {
      const from = new URL(candidate.from);
      const sameHost = from.port === '' ? host.replace(/:\d+$/, '') === from.hostname : host === from.host;
      const prefix = from.pathname.replace(/\/$/, '');
      const under = path === prefix || path.startsWith(`${prefix}/`) || prefix === '';
      if (sameHost && under && prefix.length > bestLength) {
        best = candidate;
        bestLength = prefix.length;
      }
    }
    return best;
  }

  function rememberState(state: string): void {
    const now = clock.now();
    if (usedStates.size >= USED_STATES_MAX) {
      for (const [key, expires] of usedStates) if (expires <= now) usedStates.delete(key);
      if (usedStates.size >= USED_STATES_MAX) {
        const oldest = usedStates.keys().next();
        if (!oldest.done) usedStates.delete(oldest.value);
      }
    }
    usedStates.set(state, now + LOGIN_STATE_TTL_MS);
  }

  const adminRoutes: ApiRoute[] = [
    {
      method: 'GET',
      path: '/api/v1/sessions',
      summary: 'List sessions (?user=ID, ?device=ID, ?all=1 to include ended ones)',
      handler: async (request) => {
        const user = request.query.get('user') ?? undefined;
        const device = request.query.get('device') ?? undefined;
        const list = await sessions.list({
          ...(user !== undefined ? { userId: user } : {}),
          ...(device !== undefined ? { deviceId: device } : {}),
          includeEnded: request.query.get('all') === '1',
        });
        return { status: 200, body: { sessions: list } };
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/sessions/:id',
      summary: 'Revoke one session',
      handler: async (request) => {
        const id = request.params.id ?? '';
        if (!(await sessions.revoke(id, `admin:${request.principal}`))) {
          throw new VigilError('ERR_SESSION_NOT_FOUND', 'no live session with that id', {
            status: 404,
            publicMessage: 'no live session with that id',
          });
        }
        return { status: 200, body: { revoked: 1 } };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/users/:id/revoke-sessions',
      summary: 'Revoke every session of a user (id idp:subject), on every replica',
      handler: async (request) => ({
        status: 200,
        body: { revoked: await sessions.revokeUser(request.params.id ?? '', `admin:${request.principal}`) },
      }),
    },
    {
      method: 'POST',
      path: '/api/v1/devices/:id/revoke-sessions',
      summary: 'Revoke every session bound to a device',
      handler: async (request) => ({
        status: 200,
        body: { revoked: await sessions.revokeDevice(request.params.id ?? '', `admin:${request.principal}`) },
      }),
    },
  ];

  async function handle(
    request: IncomingMessage,
    response: ServerResponse,
    context: { secure: boolean },
  ): Promise<boolean> {
    const url = new URL(request.url ?? '/', 'http://proxy.invalid');
    const method = request.method ?? 'GET';
    const routes: Record<string, () => Promise<void>> = {
      '/.vigil/login': () => login(request, response, url, context.secure),
      '/.vigil/callback': () => callback(request, response, url),
      '/.vigil/logout': () => logout(request, response, url),
      '/.vigil/whoami': () => whoami(request, response),
    };
    const run = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
    if (!run) return false;
    const allowed =
      url.pathname === '/.vigil/logout' ? method === 'GET' || method === 'POST' : method === 'GET';
    if (!allowed) {
      sendJson(response, 405, { error: 'method-not-allowed' });
      return true;
    }
    try {
      await run();
    } catch (error) {
      logger.error({ err: error, path: url.pathname }, 'identity handler failed');
      if (!response.headersSent) sendJson(response, 500, { error: 'internal', request_id: randomUUID() });
    }
    return true;
  }

  return {
    authenticate,
    authenticateSync(request, authOptions) {
      const result = authenticate(request, authOptions);
      if (!(result instanceof Promise)) return result;
      result.catch((error: unknown) => logger.warn({ err: error }, 'background token verification failed'));
      return { reason: 'token-not-yet-verified' };
    },
    reservedHandlers(secure) {
      const handler = (request: IncomingMessage, response: ServerResponse) => {
        void handle(request, response, { secure });
      };
      return new Map(IDENTITY_PATHS.map((path) => [path, handler]));
    },
    handle,
    adminRoutes,
    sessions,
    verifier,
    get providerNames() {
      return [...providers.keys()];
    },
    async attach(proxyUrl) {
      const dev = config.dev_idp;
      if (dev === false || devIdp) return;
      logger.warn(
        { name: dev.name },
        'the built-in dev identity provider is enabled (dev_idp): demo users with known passwords; never use it in production',
      );
      const origins = new Set([proxyUrl, ...config.routes.map((route) => new URL(route.from).origin)]);
      const secret = randomUUID();
      devIdp = await startDevIdp({
        host: dev.listen.host,
        port: dev.listen.port,
        name: dev.name,
        users: dev.users ?? DEFAULT_DEV_USERS,
        clients: [
          {
            client_id: 'vigil',
            client_secret: secret,
            redirect_uris: [...origins].map((origin) => `${origin}/.vigil/callback`),
          },
        ],
        logger,
      });
      const settings: IdentityProviderConfig = {
        name: dev.name,
        issuer: devIdp.issuer,
        client_id: 'vigil',
        token_endpoint_auth_method: 'client_secret_basic',
        scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
        claims: { user_id: 'sub', email: 'email', groups: 'groups' },
        algorithms: ['RS256'],
        leeway: 30_000,
        refresh_interval: 60_000,
      };
      const provider = new OidcProvider({ ...providerOptions(settings), clientSecret: secret });
      providers.set(dev.name, provider);
      refreshIntervals.set(dev.name, settings.refresh_interval);
      verifier.addIssuer(trustedIssuer(settings, provider));
      logger.info({ issuer: devIdp.issuer, name: dev.name }, 'dev identity provider listening');
    },
    async close() {
      await sessions.close();
      await devIdp?.close();
    },
  };
}

function providerOptions(idp: IdentityProviderConfig) {
  return {
    name: idp.name,
    issuer: idp.issuer,
    clientId: idp.client_id,
    authMethod: idp.token_endpoint_auth_method,
    clientSecret: idp.client_secret_file?.reveal(),
    privateKeyPem: idp.private_key_file?.reveal(),
    scopes: idp.scopes,
    claims: idp.claims,
    algorithms: idp.algorithms,
    leewayMs: idp.leeway,
  };
}

function providerFor(idp: IdentityProviderConfig): OidcProvider {
  return new OidcProvider(providerOptions(idp));
}

function trustedIssuer(idp: IdentityProviderConfig, provider: OidcProvider): TrustedIssuer {
  return {
    name: idp.name,
    issuer: idp.issuer,
    audience: idp.audience ?? idp.client_id,
    algorithms: idp.algorithms,
    leewayMs: idp.leeway,
    typ: idp.typ,
    claims: idp.claims,
    keys: provider.bearerKeys,
  };
}

function parseLoginState(text: string): LoginState | undefined {
  try {
    const value = JSON.parse(text) as Partial<LoginState>;
    const strings = ['state', 'nonce', 'codeVerifier', 'idp', 'returnTo', 'redirectUri'] as const;
    if (strings.some((key) => typeof value[key] !== 'string') || typeof value.startedAt !== 'number')
      return undefined;
    if (value.maxAgeS !== undefined && typeof value.maxAgeS !== 'number') return undefined;
    return value as LoginState;
  } catch {
    return undefined;
  }
}

function chooser(names: readonly string[], returnTo: string): string {
  const items = names
    .map(
      (name) =>
        `<li><a href="/.vigil/login?idp=${encodeURIComponent(name)}&amp;rd=${encodeURIComponent(returnTo)}">${escapeHtml(name)}</a></li>`,
    )
    .join('');
  return `<h1>Sign in</h1><p>Choose your identity provider:</p><ul>${items}</ul>`;
}

function sendHtml(
  response: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'",
    'x-frame-options': 'DENY',
    ...headers,
  });
  response.end(
    `<!doctype html><html><head><meta charset="utf-8"><title>Vigil</title></head><body>${body}</body></html>`,
  );
}

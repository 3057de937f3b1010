import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { escapeHtml } from '../internal/html.ts';
import { readBody } from '../internal/http.ts';
import { constantTimeEqual } from '../internal/secrets.ts';
import type { Logger } from '../telemetry/index.ts';

/** A demo user of the built-in dev IdP. */
export interface DevUser {
  username: string;
  password: string;
  email?: string | undefined;
  groups: readonly string[];
  /** ["pwd","mfa"] marks a user who used MFA. */
  amr: readonly string[];
}

/** alice: engineering + sre with MFA; bob: contractor without MFA; carol: finance. */
export const DEFAULT_DEV_USERS: readonly DevUser[] = Object.freeze([
  { username: 'alice', password: 'demo', groups: ['engineering', 'sre'], amr: ['pwd', 'mfa'] },
  { username: 'bob', password: 'demo', groups: ['contractors'], amr: ['pwd'] },
  { username: 'carol', password: 'demo', groups: ['finance'], amr: ['pwd'] },
]);

export interface DevClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** Public keys of a private_key_jwt client. */
  jwks?: { keys: Record<string, unknown>[] };
}

export interface DevIdp {
  readonly issuer: string;
  /** Replaces a user (or adds one); a later refresh for a removed user is refused. */
  setUser(user: DevUser): void;
  removeUser(username: string): void;
  close(): Promise<void>;
}

const FORM_BODY_LIMIT = 8 * 1024;
const ACR_MFA = 'urn:vigil:dev:mfa';
const ACR_PWD = 'urn:vigil:dev:pwd';

/**
 * The built-in development identity provider (oidc-provider) on its own loopback
 * listener: authorization code + PKCE, refresh tokens, a plain HTML login form and no
 * consent screen. For `vigil up` and tests; `vigil server` starts it only when the
 * config says `dev_idp`, and logs a warning when it does.
 */
export async function startDevIdp(options: {
  host: string;
  port: number;
  /** Tells apart two dev IdPs on one host in the cookie names. */
  name: string;
  users?: readonly DevUser[];
  clients: DevClient[];
  logger: Logger;
}): Promise<DevIdp> {
  const users = new Map((options.users ?? DEFAULT_DEV_USERS).map((user) => [user.username, user]));
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  const issuer = `http://${host}:${address.port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = {
    ...(await exportJWK(privateKey)),
    kid: `dev-${randomBytes(4).toString('hex')}`,
    use: 'sig',
    alg: 'RS256',
  };
  const prefix = `_dev_${options.name.replace(/[^a-z0-9]/g, '_')}`;
  const scopes = ['openid', 'offline_access', 'email', 'profile', 'groups'];

  const configuration: Configuration = {
    clients: options.clients.map((client) => ({
      ...client,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    })),
    jwks: { keys: [signingKey] },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: {
        session: `${prefix}_session`,
        interaction: `${prefix}_interaction`,
        resume: `${prefix}_resume`,
      },
    },
    scopes,
    claims: {
      openid: ['sub', 'amr', 'acr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // The ID token carries the scope claims, so that Vigil needs no userinfo call.
    conformIdTokenClaims: false,
    acrValues: [ACR_PWD, ACR_MFA],
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    // A refresh token for every code grant: Vigil uses it to keep groups current, and a
    // user removed here loses access at the next refresh.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: 600,
      IdToken: 600,
      RefreshToken: 86_400,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
    },
    findAccount: async (_ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          email: user.email ?? `${sub}@example.com`,
          email_verified: true,
          name: sub,
          groups: [...user.groups],
        }),
      };
    },
    // First-party demo: the grant is created on login, so there is no consent screen.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const oidc = ctx.oidc;
      const clientId = oidc.client?.clientId;
      const accountId = oidc.session?.accountId;
      if (!clientId || !accountId) return undefined;
      const existingId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(clientId);
      if (existingId) {
        const existing = await oidc.provider.Grant.find(existingId);
        if (existing) return existing;
      }
      const grant = new oidc.provider.Grant({ clientId, accountId });
      grant.addOIDCScope(scopes.join(' '));
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups']);
      await grant.save();
      return grant;
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page(
        'Error',
        `<p>${escapeHtml(String(out.error))}: ${escapeHtml(String(out.error_description ?? ''))}</p>`,
      );
    },
    clientBasedCORS: () => false,
  };
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, error) => options.logger.error({ err: error }, 'dev IdP error'));
  const callback = provider.callback();
  const formAction = [
    "'self'",
    ...new Set(options.clients.flatMap((client) => client.redirect_uris.map((uri) => new URL(uri).origin))),
  ].join(' ');

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/interaction/')) {
      interaction(request, response, path).catch((error: unknown) => {
        options.logger.warn({ err: error }, 'dev IdP login page error');
        if (!response.headersSent) {
          response.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
          response.end(page('Login failed', '<p>The login session expired or is invalid. Start again.</p>'));
        } else response.destroy();
      });
      return;
    }
    callback(request, response);
  });

  async function interaction(
    request: IncomingMessage,
    response: ServerResponse,
    path: string,
  ): Promise<void> {
    const details = await provider.interactionDetails(request, response);
    const uid = details.uid;
    if (request.method === 'GET' && path === `/interaction/${uid}`) {
      sendHtml(response, 200, loginForm(uid, options.name, ''), formAction);
      return;
    }
    if (request.method === 'POST' && path === `/interaction/${uid}/login`) {
      const form = new URLSearchParams((await readBody(request, FORM_BODY_LIMIT)).toString('utf8'));
      const username = form.get('username') ?? '';
      const user = users.get(username);
      // Compare even for an unknown user, so timing does not tell which names exist.
      const passwordOk = constantTimeEqual(
        form.get('password') ?? '',
        user?.password ?? randomBytes(16).toString('hex'),
      );
      if (!user || !passwordOk) {
        sendHtml(response, 401, loginForm(uid, options.name, 'Wrong username or password.'), formAction);
        return;
      }
      await provider.interactionFinished(
        request,
        response,
        {
          login: {
            accountId: user.username,
            amr: [...user.amr],
            acr: user.amr.includes('mfa') ? ACR_MFA : ACR_PWD,
          },
        },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    sendHtml(response, 404, page('Not found', '<p>Not found.</p>'));
  }

  return {
    issuer,
    setUser: (user) => {
      users.set(user.username, user);
    },
    removeUser: (username) => {
      users.delete(username);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function loginForm(uid: string, name: string, error: string): string {
  return page(
    `Sign in to ${name}`,
    `${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${encodeURIComponent(uid)}/login">
  <label>Username <input name="username" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
<p class="hint">Vigil development IdP. Users: alice, bob, carol; password: demo.</p>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

/**
 * `formAction` must list the clients' callback origins too: browsers apply form-action
 * to the redirects that follow a form post, and the login post ends at the callback.
 */
function sendHtml(response: ServerResponse, status: number, html: string, formAction = "'self'"): void {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': `default-src 'none'; form-action ${formAction}`,
    'x-frame-options': 'DENY',
  });
  response.end(html);
}

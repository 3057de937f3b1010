import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/index.ts';
import {
  createIdentity,
  type DevIdp,
  type IdentityService,
  Sealer,
  safeReturnPath,
  startDevIdp,
} from '../../src/identity/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { silentLogger } from '../../src/telemetry/index.ts';
import { Browser, freePort } from '../support/cookie-jar.ts';
import { tempDir } from '../support/tmp.ts';

interface Proxy {
  url: string;
  server: Server;
  identity?: IdentityService;
}

/** A stand-in for the proxy listener: identity paths go to the capability, the rest 404. */
async function startProxy(): Promise<Proxy> {
  const proxy: Proxy = { url: '', server: createServer() };
  proxy.server.on('request', (request, response) => {
    const identity = proxy.identity;
    if (!identity) {
      response.writeHead(503).end();
      return;
    }
    identity.handle(request, response, { secure: false }).then((handled) => {
      if (!handled) response.writeHead(404, { 'content-type': 'text/plain' }).end('no-route');
    });
  });
  await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
  return proxy;
}

const dir = tempDir();
const secretPath = join(dir, 'corp.secret');
writeFileSync(secretPath, 'corp-client-secret\n', { mode: 0o600 });
let store: Store;
let corp: DevIdp;
let downPort: number;
const proxies: Proxy[] = [];

function configText(): string {
  return `server:
  data_dir: ${join(dir, 'data')}
dev_idp:
  listen: 127.0.0.1:0
identity_providers:
  - name: corp
    issuer: ${corp.issuer}
    client_id: vigil-corp
    client_secret_file: ${secretPath}
    algorithms: [RS256]
  - name: down
    issuer: http://127.0.0.1:${downPort}
    client_id: vigil
    client_secret_file: ${secretPath}
routes:
  - name: corp-app
    from: ${proxies[0]?.url}/corp-app
    to: http://127.0.0.1:9
    policy: any
    idp: corp
    reauth_after: 4h
`;
}

async function identityFor(proxy: Proxy): Promise<IdentityService> {
  const { config } = parseConfig(configText(), 'vigil.yaml', {}, dir);
  const identity = await createIdentity({
    config,
    store,
    logger: silentLogger(),
    dataDir: join(dir, 'data'),
  });
  await identity.attach(proxy.url);
  proxy.identity = identity;
  return identity;
}

async function whoami(browser: Browser, proxy: Proxy) {
  const visit = await browser.request(`${proxy.url}/.vigil/whoami`);
  return { status: visit.status, body: JSON.parse(visit.body) as Record<string, unknown> };
}

/** Runs a login up to the callback without following it; returns the callback URL. */
async function loginUntilCallback(browser: Browser, proxy: Proxy, idp: string, user = 'alice'): Promise<URL> {
  const form = await browser.follow(`${proxy.url}/.vigil/login?idp=${idp}&rd=/after`);
  const action = /<form method="post" action="([^"]+)"/.exec(form.body)?.[1] ?? '';
  let visit = await browser.request(new URL(action, form.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: user, password: 'demo' }).toString(),
  });
  for (let hop = 0; hop < 10; hop++) {
    const location = new URL(visit.response.headers.get('location') ?? '', visit.url);
    if (location.pathname === '/.vigil/callback') return location;
    visit = await browser.request(location);
  }
  throw new Error('no callback reached');
}

before(async () => {
  store = await openStore(`sqlite://${join(dir, 'vigil.db')}`);
  downPort = await freePort();
  proxies.push(await startProxy(), await startProxy());
  corp = await startDevIdp({
    host: '127.0.0.1',
    port: 0,
    name: 'corp',
    clients: [
      {
        client_id: 'vigil-corp',
        client_secret: 'corp-client-secret',
        redirect_uris: proxies.map((proxy) => `${proxy.url}/.vigil/callback`),
      },
    ],
    logger: silentLogger(),
  });
  for (const proxy of proxies) await identityFor(proxy);
});

after(async () => {
  for (const proxy of proxies) {
    proxy.server.close();
    await proxy.identity?.close();
  }
  await corp.close();
  await store.close();
});

describe('login flow', () => {
  it('logs alice in through the dev IdP with groups and MFA, and back to the return path', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const end = await browser.login(`${proxy.url}/.vigil/login?idp=dev&rd=/after?x=1`, 'alice');
    assert.equal(end.url.pathname, '/after');
    assert.equal(end.url.search, '?x=1');
    const me = await whoami(browser, proxy);
    assert.equal(me.status, 200);
    assert.equal(me.body.user_id, 'dev:alice');
    assert.deepEqual(me.body.groups, ['engineering', 'sre']);
    assert.deepEqual(me.body.amr, ['pwd', 'mfa']);
    assert.equal(me.body.acr, 'urn:vigil:dev:mfa');
    assert.equal(me.body.kind, 'session');
    const cookie = browser.jar.get(proxy.url, '_vigil_session') ?? '';
    assert.ok(cookie.startsWith('v1.'), 'an opaque sealed cookie');
    assert.ok(!cookie.includes('alice'));
  });

  it('logs bob in through a second IdP at the same time (multi-IdP), without MFA', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    await browser.login(`${proxy.url}/.vigil/login?idp=corp`, 'bob');
    const me = await whoami(browser, proxy);
    assert.equal(me.body.user_id, 'corp:bob');
    assert.equal(me.body.idp, 'corp');
    assert.deepEqual(me.body.groups, ['contractors']);
    assert.deepEqual(me.body.amr, ['pwd']);
  });

  it("uses the route's idp and asks the IdP for a login no older than its reauth_after", async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const start = await browser.request(`${proxy.url}/.vigil/login?rd=/corp-app/reports`);
    assert.equal(start.status, 302);
    const location = new URL(start.response.headers.get('location') ?? '');
    assert.equal(location.origin, new URL(corp.issuer).origin);
    assert.equal(location.searchParams.get('max_age'), String(4 * 3600));
    assert.equal(location.searchParams.get('code_challenge_method'), 'S256');
    const end = await browser.login(location, 'alice');
    assert.equal(end.url.pathname, '/corp-app/reports');
    assert.equal((await whoami(browser, proxy)).body.user_id, 'corp:alice');
  });

  it('lists the identity providers when the login names none', async () => {
    const [proxy] = proxies as [Proxy];
    const page = await new Browser().request(`${proxy.url}/.vigil/login?rd=/x`);
    assert.equal(page.status, 200);
    for (const name of ['dev', 'corp', 'down'])
      assert.match(page.body, new RegExp(`idp=${name}&amp;rd=%2Fx`));
  });

  it('refuses a wrong password at the dev IdP', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const form = await browser.follow(`${proxy.url}/.vigil/login?idp=dev`);
    const refused = await browser.submitLogin(form, 'alice', 'wrong');
    assert.equal(refused.status, 401);
    assert.equal((await whoami(browser, proxy)).status, 401);
  });

  it('logs out: the session is revoked, not only the cookie dropped', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    await browser.login(`${proxy.url}/.vigil/login?idp=dev`, 'carol');
    const cookie = browser.jar.get(proxy.url, '_vigil_session') as string;
    const out = await browser.request(`${proxy.url}/.vigil/logout?rd=/bye`);
    assert.equal(out.status, 302);
    assert.equal(out.response.headers.get('location'), '/bye');
    const replay = await fetch(`${proxy.url}/.vigil/whoami`, {
      headers: { cookie: `_vigil_session=${cookie}` },
    });
    assert.equal(replay.status, 401);
    assert.equal(((await replay.json()) as { reason: string }).reason, 'session-unknown');
  });

  it('logs out everywhere on POST only: every session of the user ends', async () => {
    const [proxy] = proxies as [Proxy];
    const laptop = new Browser();
    const phone = new Browser();
    await laptop.login(`${proxy.url}/.vigil/login?idp=corp`, 'alice');
    await phone.login(`${proxy.url}/.vigil/login?idp=corp`, 'alice');
    const viaLink = await laptop.request(`${proxy.url}/.vigil/logout?everywhere=1`);
    assert.equal(viaLink.status, 200);
    assert.equal((await whoami(phone, proxy)).status, 200, 'a GET ends only its own session');
    const desk = new Browser();
    await desk.login(`${proxy.url}/.vigil/login?idp=corp`, 'alice');
    const posted = await desk.request(`${proxy.url}/.vigil/logout?everywhere=1`, { method: 'POST' });
    assert.equal(posted.status, 200);
    assert.equal((await whoami(phone, proxy)).status, 401);
    assert.equal((await whoami(desk, proxy)).status, 401);
  });

  it('sets the session cookie HttpOnly, Secure and SameSite=Lax', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const callback = await loginUntilCallback(browser, proxy, 'dev');
    const response = await fetch(callback, {
      headers: { cookie: browser.jar.header(callback) ?? '' },
      redirect: 'manual',
    });
    const cookie = response.headers.getSetCookie().find((line) => line.startsWith('_vigil_session='));
    assert.match(cookie ?? '', /; HttpOnly; Secure; SameSite=Lax; Max-Age=43200$/);
  });
});

describe('login flow attacks', () => {
  it('refuses a callback without the login state cookie', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const callback = await loginUntilCallback(browser, proxy, 'dev');
    browser.jar.delete(proxy.url, '_vigil_session_login');
    const visit = await browser.request(callback);
    assert.equal(visit.status, 400);
    assert.equal(JSON.parse(visit.body).reason, 'login-state-missing');
  });

  it('refuses a callback whose state does not match (login CSRF)', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const callback = await loginUntilCallback(browser, proxy, 'dev');
    callback.searchParams.set('state', 'attacker-state');
    const visit = await browser.request(callback);
    assert.equal(JSON.parse(visit.body).reason, 'login-state-mismatch');
    callback.searchParams.delete('state');
    const missing = await browser.request(callback);
    assert.equal(
      JSON.parse(missing.body).reason,
      'login-state-missing',
      'the failed attempt cleared the login cookie',
    );
  });

  it('refuses a replayed callback on the same replica, and a replayed code on another', async () => {
    const [one, two] = proxies as [Proxy, Proxy];
    const browser = new Browser();
    const callback = await loginUntilCallback(browser, one, 'corp');
    const loginCookie = browser.jar.get(one.url, '_vigil_session_login') as string;
    const first = await browser.request(callback);
    assert.equal(first.status, 302, first.body);
    const replay = await fetch(callback, {
      headers: { cookie: `_vigil_session_login=${loginCookie}` },
      redirect: 'manual',
    });
    assert.equal(((await replay.json()) as { reason: string }).reason, 'login-state-replayed');
    // Another replica has not seen the state; the IdP refuses the used code.
    const elsewhere = new URL(callback.pathname + callback.search, two.url);
    const other = await fetch(elsewhere, {
      headers: { cookie: `_vigil_session_login=${loginCookie}` },
      redirect: 'manual',
    });
    assert.equal(other.status, 400);
    assert.equal(((await other.json()) as { reason: string }).reason, 'login-code-rejected');
  });

  it('refuses an ID token whose nonce does not match the login', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const callback = await loginUntilCallback(browser, proxy, 'corp');
    const key = Buffer.from(readFileSync(join(dir, 'data', 'session.key'), 'utf8').trim(), 'base64url');
    const sealer = new Sealer(key, 'login state');
    const state = JSON.parse(
      sealer.open(browser.jar.get(proxy.url, '_vigil_session_login') as string) ?? '{}',
    );
    browser.jar.set(
      proxy.url,
      '_vigil_session_login',
      sealer.seal(JSON.stringify({ ...state, nonce: 'other' })),
      '/.vigil/',
    );
    const visit = await browser.request(callback);
    assert.equal(visit.status, 400);
    assert.equal(JSON.parse(visit.body).reason, 'login-nonce-mismatch');
    assert.equal((await whoami(browser, proxy)).status, 401);
  });

  for (const rd of [
    '//evil.example',
    '/\\evil.example',
    'https://evil.example/',
    'http:evil.example',
    '%2F%2Fevil.example',
    '/%2F/evil.example',
    '/%5Cevil.example',
    '/%252F%252Fevil.example',
    '/\t/evil.example',
    '/%0d%0aset-cookie:x=1',
    'javascript:alert(1)',
    'evil.example',
  ]) {
    it(`refuses the return path ${JSON.stringify(rd)}`, async () => {
      assert.equal(safeReturnPath(rd), undefined);
      const [proxy] = proxies as [Proxy];
      const visit = await new Browser().request(
        `${proxy.url}/.vigil/login?idp=dev&rd=${encodeURIComponent(rd)}`,
      );
      assert.equal(visit.status, 400);
      assert.equal(JSON.parse(visit.body).reason, 'login-return-invalid');
    });
  }

  it('accepts same-origin relative return paths', () => {
    assert.equal(safeReturnPath('/app/page?x=1#top'), '/app/page?x=1#top');
    assert.equal(safeReturnPath('/a%20b'), '/a%20b');
  });

  it('answers 404 for an unknown IdP and 503 when the IdP is down, never a session', async () => {
    const [proxy] = proxies as [Proxy];
    const browser = new Browser();
    const unknown = await browser.request(`${proxy.url}/.vigil/login?idp=nope`);
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body).reason, 'login-idp-unknown');
    const down = await browser.request(`${proxy.url}/.vigil/login?idp=down`);
    assert.equal(down.status, 503);
    assert.equal(JSON.parse(down.body).reason, 'idp-unavailable');
    assert.equal(browser.jar.get(proxy.url, '_vigil_session'), undefined);
  });
});

describe('refresh keeps groups fresh', () => {
  it('updates groups at the next refresh and ends the session of a user removed from the IdP', async () => {
    const [proxy] = proxies as [Proxy];
    const identity = proxy.identity as IdentityService;
    const browser = new Browser();
    await browser.login(`${proxy.url}/.vigil/login?idp=corp`, 'carol');
    const me = await whoami(browser, proxy);
    const sessionId = me.body.session_id as string;
    corp.setUser({ username: 'carol', password: 'demo', groups: ['finance', 'auditors'], amr: ['pwd'] });
    assert.equal((await identity.sessions.refreshNow(sessionId))?.kind, 'updated');
    assert.deepEqual((await whoami(browser, proxy)).body.groups, ['finance', 'auditors']);
    corp.removeUser('carol');
    assert.equal((await identity.sessions.refreshNow(sessionId))?.kind, 'denied');
    const after = await whoami(browser, proxy);
    assert.equal(after.status, 401);
    assert.equal(after.body.reason, 'session-unknown');
  });
});

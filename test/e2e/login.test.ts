import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type DevIdp, startDevIdp } from '../../src/identity/index.ts';
import { silentLogger } from '../../src/telemetry/index.ts';
import { runCli, spawnServer } from '../support/cli.ts';
import { Browser, freePort } from '../support/cookie-jar.ts';
import { tempDir } from '../support/tmp.ts';

interface Whoami {
  user_id: string;
  idp: string;
  groups: string[];
  amr: string[];
  session_id: string;
}

async function whoami(
  browser: Browser,
  proxyUrl: string,
): Promise<{ status: number; body: Whoami & { reason?: string } }> {
  const visit = await browser.request(`${proxyUrl}/.vigil/whoami`);
  return { status: visit.status, body: JSON.parse(visit.body) };
}

describe('browser login through a real vigil server', () => {
  it('logs in at the built-in dev IdP and at a second IdP, lists and revokes the sessions', async () => {
    const dir = tempDir();
    const proxyPort = await freePort();
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    // A second IdP, outside the server, registered like any external provider.
    const corp: DevIdp = await startDevIdp({
      host: '127.0.0.1',
      port: 0,
      name: 'corp',
      clients: [
        {
          client_id: 'vigil-e2e',
          client_secret: 'e2e-secret',
          redirect_uris: [`${proxyUrl}/.vigil/callback`],
        },
      ],
      logger: silentLogger(),
    });
    after(() => corp.close());
    const secretFile = join(dir, 'corp.secret');
    writeFileSync(secretFile, 'e2e-secret\n', { mode: 0o600 });
    const configPath = join(dir, 'vigil.yaml');
    writeFileSync(
      configPath,
      `server:
  proxy_listen: 127.0.0.1:${proxyPort}
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
  shutdown_timeout: 2s
log:
  format: json
dev_idp:
  listen: 127.0.0.1:0
identity_providers:
  - name: corp
    issuer: ${corp.issuer}
    client_id: vigil-e2e
    client_secret_file: ${secretFile}
    token_endpoint_auth_method: client_secret_post
`,
    );
    const server = await spawnServer(configPath);
    try {
      assert.equal(server.proxyUrl, proxyUrl);
      assert.ok(
        server.logs.some(
          (line) => line.level === 40 && /dev identity provider is enabled/.test(String(line.msg)),
        ),
        'the dev IdP logs a warning',
      );

      const alice = new Browser();
      const landed = await alice.login(`${proxyUrl}/.vigil/login?idp=dev&rd=/welcome`, 'alice');
      assert.equal(landed.url.pathname, '/welcome');
      assert.ok(alice.visited.some((url) => url.pathname === '/.vigil/callback'));
      const me = await whoami(alice, proxyUrl);
      assert.equal(me.status, 200);
      assert.equal(me.body.user_id, 'dev:alice');
      assert.deepEqual(me.body.groups, ['engineering', 'sre']);
      assert.deepEqual(me.body.amr, ['pwd', 'mfa']);

      const bob = new Browser();
      await bob.login(`${proxyUrl}/.vigil/login?idp=corp`, 'bob');
      const bobMe = await whoami(bob, proxyUrl);
      assert.equal(bobMe.body.user_id, 'corp:bob');
      assert.deepEqual(bobMe.body.groups, ['contractors']);

      const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
      const listed = (await (
        await fetch(`${server.adminUrl}/api/v1/sessions`, { headers: { authorization: `Bearer ${token}` } })
      ).json()) as { sessions: { id: string; user_id: string; groups: string[]; amr: string[] }[] };
      const aliceRow = listed.sessions.find((row) => row.user_id === 'dev:alice');
      assert.deepEqual(aliceRow?.groups, ['engineering', 'sre']);
      assert.deepEqual(aliceRow?.amr, ['pwd', 'mfa']);
      assert.ok(listed.sessions.some((row) => row.user_id === 'corp:bob'));

      const cli = await runCli([
        'session',
        'list',
        '--server',
        server.adminUrl,
        '--token-file',
        join(dir, 'data', 'admin.token'),
        '--json',
      ]);
      assert.equal(cli.code, 0, cli.stderr);
      const rows = JSON.parse(cli.stdout) as { id: string; user_id: string }[];
      assert.equal(rows.length, 2);

      const revoked = await runCli(
        ['session', 'revoke', me.body.session_id, '--server', server.adminUrl, '--json'],
        {
          env: { VIGIL_ADMIN_TOKEN: token },
        },
      );
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.deepEqual(JSON.parse(revoked.stdout), { revoked: 1 });
      const after = await whoami(alice, proxyUrl);
      assert.equal(after.status, 401);
      assert.equal(after.body.reason, 'session-unknown');
      assert.equal((await whoami(bob, proxyUrl)).status, 200, 'other sessions live on');

      const again = await runCli(['session', 'revoke', me.body.session_id, '--server', server.adminUrl], {
        env: { VIGIL_ADMIN_TOKEN: token },
      });
      assert.equal(again.code, 1);
      assert.match(again.stderr, /404/);

      const everywhere = await runCli(
        ['session', 'revoke', '--user', 'corp:bob', '--server', server.adminUrl, '--json'],
        {
          env: { VIGIL_ADMIN_TOKEN: token },
        },
      );
      assert.deepEqual(JSON.parse(everywhere.stdout), { revoked: 1 });
      assert.equal((await whoami(bob, proxyUrl)).status, 401);

      const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
      assert.match(metrics, /^vigil_identity_logins_total\{result="ok".*\} 2$/m);
      assert.match(metrics, /^vigil_identity_live_sessions\{.*\} 0$/m);

      const logText = JSON.stringify(server.logs);
      for (const browser of [alice, bob]) {
        const cookie = browser.jar.get(proxyUrl, '_vigil_session');
        assert.ok(cookie && !logText.includes(cookie), 'no session cookie in the logs');
      }
    } finally {
      const { code } = await server.stop('SIGTERM');
      assert.equal(code, 0);
    }
  });

  it('the proxy lets the logged-in user through by policy, with identity headers, and sends others away', async () => {
    const dir = tempDir();
    const proxyPort = await freePort();
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const upstream = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ path: request.url, headers: request.headers }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    after(() => upstream.close());
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    writeFileSync(
      join(dir, 'sre.yaml'),
      `policies:
  - name: sre-only
    rules:
      - name: sre-with-mfa
        allow:
          and:
            - groups: { any: [sre] }
            - mfa: true
`,
    );
    const configPath = join(dir, 'vigil.yaml');
    writeFileSync(
      configPath,
      `server:
  proxy_listen: 127.0.0.1:${proxyPort}
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
  shutdown_timeout: 2s
log:
  format: json
dev_idp: true
policy_files: [sre.yaml]
routes:
  - name: ops
    from: ${proxyUrl}
    to: ${upstreamUrl}
    policy: sre-only
`.replace('dev_idp: true', 'dev_idp:\n  listen: 127.0.0.1:0'),
    );
    const server = await spawnServer(configPath);
    try {
      const anonymous = await fetch(`${proxyUrl}/dashboard`, {
        headers: { accept: 'text/html' },
        redirect: 'manual',
      });
      assert.equal(anonymous.status, 302);
      assert.match(anonymous.headers.get('location') ?? '', /^\/\.vigil\/login\?rd=%2Fdashboard/);

      const alice = new Browser();
      const landed = await alice.login(`${proxyUrl}/dashboard`, 'alice');
      assert.equal(landed.status, 200, landed.body);
      const seen = JSON.parse(landed.body) as { path: string; headers: Record<string, string> };
      assert.equal(seen.path, '/dashboard');
      assert.equal(seen.headers['x-vigil-user'], 'dev:alice');
      assert.equal(seen.headers['x-vigil-groups'], 'engineering,sre');
      assert.ok(
        !(seen.headers.cookie ?? '').includes('_vigil_session'),
        'the upstream never sees the session cookie',
      );

      const bob = new Browser();
      const denied = await bob.login(`${proxyUrl}/dashboard`, 'bob');
      assert.equal(denied.status, 403);
    } finally {
      await server.stop('SIGTERM');
    }
  });

  it('vigil server never starts the dev IdP unless the config asks for it', async () => {
    const dir = tempDir();
    const configPath = join(dir, 'vigil.yaml');
    writeFileSync(
      configPath,
      `server:\n  proxy_listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(dir, 'data')}\nlog:\n  format: json\n`,
    );
    const server = await spawnServer(configPath);
    try {
      const login = await fetch(`${server.proxyUrl}/.vigil/login?idp=dev`, { redirect: 'manual' });
      assert.equal(login.status, 404);
      assert.equal(((await login.json()) as { reason: string }).reason, 'login-idp-unknown');
      assert.ok(!server.logs.some((line) => /dev identity provider/.test(String(line.msg))));
    } finally {
      await server.stop('SIGTERM');
    }
  });
});

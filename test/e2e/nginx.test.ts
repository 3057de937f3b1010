import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startEchoUpstream, startProxy } from '../support/proxy-harness.ts';
import { tempDir } from '../support/tmp.ts';

const NGINX = '/usr/sbin/nginx';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Renders deploy/nginx/vigil.conf (the file users copy) into a runnable nginx.conf. */
function renderConfig(dir: string, values: Record<string, string>): string {
  let site = readFileSync(new URL('../../deploy/nginx/vigil.conf', import.meta.url), 'utf8');
  for (const [name, value] of Object.entries(values)) site = site.replaceAll(`\${${name}}`, value);
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    mkdirSync(join(dir, sub), { recursive: true });
  const config = join(dir, 'nginx.conf');
  writeFileSync(
    config,
    `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
${site}
}
`,
  );
  return config;
}

/** A GET to nginx for host app.test (fetch cannot set Host). */
function get(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      `${base}${path}`,
      { headers: { host: 'app.test', ...headers } },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, location: response.headers.location }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

// Set up in the suite body, not in before(): the harness registers its own after() hooks.
describe('nginx auth_request in front of Vigil (deploy/nginx/vigil.conf)', async () => {
  const dir = tempDir('vigil-nginx-');
  let nginx: ChildProcess;
  let base = '';
  let errorLog = '';
  let seen: Awaited<ReturnType<typeof startEchoUpstream>>['seen'] = [];
  let records: Awaited<ReturnType<typeof startProxy>>['records'] = [];

  {
    const upstream = await startEchoUpstream();
    seen = upstream.seen;
    // As deploy/nginx/vigil.conf says: nginx's address among the trusted proxies.
    const vigil = await startProxy(upstream.url, { trustedProxies: ['127.0.0.1/32'] });
    records = vigil.records;
    // nginx workers drop root privileges and must reach their temp folders.
    chmodSync(dir, 0o755);
    const port = await freePort();
    const config = renderConfig(dir, {
      LISTEN: `127.0.0.1:${port}`,
      VIGIL: new URL(vigil.url).host,
      UPSTREAM: new URL(upstream.url).host,
    });
    nginx = spawn(NGINX, ['-p', dir, '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    base = `http://127.0.0.1:${port}`;
    errorLog = join(dir, 'error.log');
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await fetch(`${base}/.vigil/healthz`);
        break;
      } catch {
        assert.ok(Date.now() < deadline && nginx.exitCode === null, `nginx did not start: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  after(() => {
    nginx?.kill('SIGTERM');
  });

  // The test identities come from the `_vigil_session` cookie (see test/support/proxy-harness.ts).
  it('lets an allowed user reach the upstream with identity headers', async () => {
    const response = await get(base, '/dashboard', { cookie: '_vigil_session=alice' });
    assert.equal(response.status, 200, readFileSync(errorLog, 'utf8'));
    const entry = seen.at(-1);
    assert.equal(entry?.url, '/dashboard');
    assert.equal(entry?.headers['x-vigil-user'], 'alice');
    assert.equal(entry?.headers['x-vigil-groups'], 'engineering,sre');
    assert.match(String(entry?.headers['x-vigil-assertion']), /^ey/);
  });

  it("replaces every X-Vigil-* header a client sends with Vigil's, and drops a device header Vigil did not set", async () => {
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.';
    const before = seen.length;
    const response = await get(base, '/dashboard', {
      cookie: '_vigil_session=bob',
      'x-vigil-user': 'alice',
      'x-vigil-email': 'alice@company.com',
      'x-vigil-groups': 'engineering,sre',
      'x-vigil-device': 'dev-forged',
      'x-vigil-assertion': forged,
    });
    assert.equal(response.status, 200, readFileSync(errorLog, 'utf8'));
    assert.equal(seen.length, before + 1);
    const headers = seen.at(-1)?.headers ?? {};
    assert.equal(headers['x-vigil-user'], 'bob');
    assert.equal(headers['x-vigil-email'], 'bob@company.com');
    assert.equal(headers['x-vigil-groups'], 'engineering');
    // The test identities have no device: Vigil sends none, so the upstream sees none.
    assert.equal(headers['x-vigil-device'], undefined);
    const assertion = String(headers['x-vigil-assertion']);
    assert.notEqual(assertion, forged);
    const payload = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString()) as {
      sub?: string;
    };
    assert.equal(payload.sub, 'bob');
  });

  it('sends an unauthenticated browser to the login page and an API client gets 401', async () => {
    const browser = await get(base, '/wiki?page=2', { accept: 'text/html' });
    assert.equal(browser.status, 302, JSON.stringify(records.at(-1)));
    assert.equal(browser.location, 'http://app.test/.vigil/login?rd=%2Fwiki%3Fpage%3D2');
    const onPort = await get(base, '/wiki', { accept: 'text/html', host: 'app.test:8443' });
    assert.equal(onPort.location, 'http://app.test:8443/.vigil/login?rd=%2Fwiki', 'the port kept');
    const api = await get(base, '/wiki');
    assert.equal(api.status, 401);
  });

  it('answers 403 to a denied user and the upstream never sees the request', async () => {
    const before = seen.length;
    const response = await get(base, '/admin/users', { cookie: '_vigil_session=bob' });
    assert.equal(response.status, 403);
    assert.equal(seen.length, before);
  });

  it('serves Vigil paths (JWKS) through nginx', async () => {
    const jwks = (await (await fetch(`${base}/.vigil/jwks.json`)).json()) as { keys: unknown[] };
    assert.equal(jwks.keys.length, 1);
  });
});

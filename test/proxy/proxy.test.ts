import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ManualClock } from '../../src/internal/clock.ts';
import { AccessLimiter, MemoryWindowCounter, UPSTREAM_DOWN_MS } from '../../src/proxy/index.ts';
import { type Seen, startEchoUpstream, startProxy } from '../support/proxy-harness.ts';

/** Sends bytes exactly as written and returns the first response's status line and body. */
function raw(url: string, text: string): Promise<{ status: number; body: string; all: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    // write, not end: a half-closed client gets no answer from Node's HTTP server.
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(text));
    socket.setTimeout(3000, () => socket.destroy());
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4), all: data });
    });
  });
}

function get(path: string, user?: string, extra = ''): string {
  const cookie = user ? `Cookie: _vigil_session=${user}\r\n` : '';
  return `GET ${path} HTTP/1.1\r\nHost: app.test\r\n${cookie}${extra}Connection: close\r\n\r\n`;
}

const reachedAdmin = (seen: Seen[]) =>
  seen.filter((entry) => entry.url.toLowerCase().includes('admin') && !entry.url.startsWith('/ADMIN'));

describe('proxy: allow, deny and forwarding', () => {
  it('forwards an allowed request with identity headers and a verifiable assertion', async () => {
    const upstream = await startEchoUpstream();
    const { url, records } = await startProxy(upstream.url);
    const response = await raw(url, get('/dashboard?x=1', 'bob'));
    assert.equal(response.status, 200);
    const seen = upstream.seen.at(-1);
    assert.equal(seen?.url, '/dashboard?x=1');
    assert.equal(seen?.headers['x-vigil-user'], 'bob');
    assert.equal(seen?.headers['x-vigil-email'], 'bob@company.com');
    assert.equal(seen?.headers['x-vigil-groups'], 'engineering');
    assert.equal(seen?.headers.cookie, undefined, 'the Vigil session cookie never reaches the upstream');
    assert.equal(seen?.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen?.headers['x-forwarded-host'], 'app.test');
    assert.doesNotMatch(response.all, /x-secret-hop/i, 'hop-by-hop response headers are dropped');
    const jwks = (await (await fetch(`${url}/.vigil/jwks.json`)).json()) as { keys: [] };
    const { payload, protectedHeader } = await jwtVerify(
      String(seen?.headers['x-vigil-assertion']),
      createLocalJWKSet(jwks),
      {
        issuer: 'http://vigil.test',
        audience: 'app',
        algorithms: ['ES256'],
      },
    );
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.sub, 'bob');
    assert.deepEqual(payload.groups, ['engineering']);
    assert.ok((payload.exp ?? 0) - (payload.iat ?? 0) <= 60);
    assert.equal(typeof payload.jti, 'string');
    assert.equal(records.at(-1)?.decision.effect, 'allow');
    assert.equal(records.at(-1)?.route, 'app');
  });

  it("sends the upstream URL's host, or with preserve_host the client's", async () => {
    const upstream = await startEchoUpstream();
    const rewritten = await startProxy(upstream.url);
    await raw(rewritten.url, get('/', 'bob'));
    assert.equal(upstream.seen.at(-1)?.headers.host, new URL(upstream.url).host);
    const preserved = await startProxy(upstream.url, { preserveHost: true });
    await raw(preserved.url, get('/', 'bob'));
    assert.equal(upstream.seen.at(-1)?.headers.host, 'app.test');
  });

  it('keeps other cookies and strips only the Vigil session cookie', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    await raw(
      url,
      `GET / HTTP/1.1\r\nHost: app.test\r\nCookie: theme=dark; _vigil_session=bob; lang=en\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(upstream.seen.at(-1)?.headers.cookie, 'theme=dark; lang=en');
  });

  it('reuses a cached assertion for the same session and route', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    await raw(url, get('/a', 'bob'));
    await raw(url, get('/b', 'bob'));
    assert.equal(
      upstream.seen[0]?.headers['x-vigil-assertion'],
      upstream.seen[1]?.headers['x-vigil-assertion'],
    );
  });

  it('assertions verify against the published JWKS after a key rotation', async () => {
    const upstream = await startEchoUpstream();
    const { url, signer } = await startProxy(upstream.url);
    await raw(url, get('/before', 'alice'));
    const before = String(upstream.seen.at(-1)?.headers['x-vigil-assertion']);
    await signer.rotate();
    await raw(url, get('/after', 'alice'));
    const afterToken = String(upstream.seen.at(-1)?.headers['x-vigil-assertion']);
    assert.notEqual(before, afterToken, 'rotation signs anew');
    const jwks = createLocalJWKSet((await (await fetch(`${url}/.vigil/jwks.json`)).json()) as { keys: [] });
    for (const token of [before, afterToken]) {
      await jwtVerify(token, jwks, { issuer: 'http://vigil.test', audience: 'app', algorithms: ['ES256'] });
    }
  });

  it('sends an unauthenticated browser to login and gives an API client 401', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const browser = await raw(url, get('/dashboard?tab=2', undefined, 'Accept: text/html\r\n'));
    assert.equal(browser.status, 302);
    assert.match(browser.all, /location: \/\.vigil\/login\?rd=%2Fdashboard%3Ftab%3D2/i);
    const api = await raw(url, get('/dashboard'));
    assert.equal(api.status, 401);
    assert.equal(upstream.seen.length, 0);
  });

  it('denies with 403, the request id and the reasons; HTML for browsers', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const api = await raw(url, get('/', 'carol'));
    assert.equal(api.status, 403);
    const body = JSON.parse(api.body) as { reasons: string[]; request_id: string };
    assert.deepEqual(body.reasons, ['group-missing']);
    assert.match(body.request_id, /^[0-9a-f]{8}-[0-9a-z]+$/);
    const page = await raw(url, get('/', 'carol', 'Accept: text/html\r\n'));
    assert.equal(page.status, 403);
    assert.match(page.body, /Access denied/);
    assert.match(page.body, /group-missing/);
    assert.equal(upstream.seen.length, 0);
  });

  it('lets a request through on an audit-mode route and records the would-be denial', async () => {
    const upstream = await startEchoUpstream();
    const { url, records } = await startProxy(upstream.url);
    const response = await raw(
      url,
      `GET /report HTTP/1.1\r\nHost: audit.test\r\nCookie: _vigil_session=bob\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(response.status, 200);
    assert.equal(records.at(-1)?.decision.effect, 'deny');
    assert.equal(records.at(-1)?.decision.mode, 'audit');
  });

  it('refuses the request when the audit log cannot take the decision (fail closed)', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url, { record: () => false });
    const response = await raw(url, get('/', 'alice'));
    assert.equal(response.status, 503);
    assert.equal(upstream.seen.length, 0);
  });

  it('streams request bodies and refuses bodies over the limit', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url, { maxBodyBytes: 1024 });
    const small = await raw(
      url,
      `POST /upload HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`,
    );
    assert.equal(small.status, 200);
    assert.equal(upstream.seen.at(-1)?.body, 'hello');
    const declared = await raw(
      url,
      `POST /upload HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n${'x'.repeat(5000)}`,
    );
    assert.equal(declared.status, 413);
    const chunk = 'y'.repeat(2000);
    const chunked = await raw(
      url,
      `POST /upload HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${(2000).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    assert.ok(
      chunked.status === 413 || chunked.status === 502,
      `chunked over the limit refused (${chunked.status})`,
    );
    assert.ok(
      !upstream.seen.some((entry) => entry.body.length > 1024),
      'no oversized body reached the upstream whole',
    );
  });

  it('answers 502 with a request id when the upstream is down', async () => {
    const { url } = await startProxy('http://127.0.0.1:1');
    const response = await raw(url, get('/', 'bob'));
    assert.equal(response.status, 502);
    assert.match(response.body, /"request_id"/);
  });
});

/** An upstream whose handler the test writes; returns its URL. */
async function upstreamWith(
  handler: Parameters<typeof createServer>[1],
): Promise<{ url: string; close: () => void }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.close(),
  };
}

describe('proxy: relaying the upstream response', () => {
  /** What the client gets for an upstream answering `ok` with these raw headers. */
  async function relayed(headers: string[]) {
    const upstream = await upstreamWith((_request, response) => {
      response.writeHead(200, [...headers, 'Content-Length', '2']);
      response.end('ok');
    });
    const { url } = await startProxy(upstream.url);
    const response = await raw(url, get('/', 'bob'));
    upstream.close();
    assert.equal(response.status, 200);
    assert.equal(response.body, 'ok');
    return response;
  }

  it('drops hop-by-hop and Connection-listed response headers and keeps repeated ones', async () => {
    const response = await relayed([
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'Connection',
      'x-hop',
      'X-Hop',
      'secret',
      'Keep-Alive',
      'timeout=5',
      'X-Kept',
      'yes',
    ]);
    assert.equal(response.all.match(/^set-cookie: /gim)?.length, 2);
    assert.match(response.all, /^x-kept: yes\r$/im);
    assert.doesNotMatch(response.all, /x-hop|timeout=5/i);
  });

  it("drops an upstream's Set-Cookie of Vigil's session or login cookie (no session fixation)", async () => {
    const response = await relayed([
      'Set-Cookie',
      '_vigil_session=attackers-session; Path=/',
      'Set-Cookie',
      ' _vigil_session_login=x; Path=/.vigil/',
      'Set-Cookie',
      '_vigil_session_other=kept',
      'Set-Cookie',
      'app=1',
    ]);
    assert.deepEqual(
      response.all.match(/^set-cookie: .*$/gim)?.map((line) => line.trim().toLowerCase()),
      ['set-cookie: _vigil_session_other=kept', 'set-cookie: app=1'],
    );
  });

  it('drops a header listed by a Connection header that comes after it', async () => {
    const response = await relayed([
      'X-Hop',
      'secret',
      'X-Kept',
      'yes',
      'Connection',
      'keep-alive',
      'Connection',
      'X-HOP',
    ]);
    assert.match(response.all, /^x-kept: yes\r$/im);
    assert.doesNotMatch(response.all, /x-hop|secret/i);
  });

  it('streams a large body through a slow client without holding it whole (backpressure)', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const chunks = 640; // 40 MiB, more than the socket buffers on the way can hold
    let sent = 0;
    const upstream = await upstreamWith((_request, response) => {
      const pump = () => {
        while (sent < chunks) {
          sent++;
          if (!response.write(chunk)) {
            response.once('drain', pump);
            return;
          }
        }
        response.end();
      };
      pump();
    });
    const { url } = await startProxy(upstream.url);
    const { port } = new URL(url);
    let sentWhileClientWaited = 0;
    const received = await new Promise<number>((resolve, reject) => {
      const outgoing = httpRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/big',
          headers: { host: 'app.test', cookie: '_vigil_session=bob' },
        },
        (response) => {
          let total = 0;
          response.pause();
          // The client reads nothing for a while: the proxy must stop reading the upstream.
          setTimeout(() => {
            sentWhileClientWaited = sent;
            response.on('data', (data: Buffer) => {
              total += data.length;
            });
            response.on('end', () => resolve(total));
            response.resume();
          }, 500);
        },
      );
      outgoing.on('error', reject);
      outgoing.end();
    });
    upstream.close();
    assert.equal(received, chunk.length * chunks);
    assert.ok(
      sentWhileClientWaited < chunks,
      `the upstream was held back while the client did not read (${sentWhileClientWaited} of ${chunks} chunks sent)`,
    );
  });

  it('aborts the upstream request when the client goes away mid-response', { timeout: 5000 }, async () => {
    let upstreamClosed: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      upstreamClosed = resolve;
    });
    const upstream = await upstreamWith((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('first part');
      response.on('close', () => upstreamClosed());
    });
    const { url } = await startProxy(upstream.url);
    const { port } = new URL(url);
    const client = connect(Number(port), '127.0.0.1', () =>
      client.write(get('/slow', 'bob').replace('Connection: close', 'Connection: keep-alive')),
    );
    await once(client, 'data');
    client.destroy();
    await closed;
    upstream.close();
  });

  it('ends the client response when the upstream dies mid-body', async () => {
    const upstream = await upstreamWith((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('only part');
      setTimeout(() => response.socket?.destroy(), 50);
    });
    const { url } = await startProxy(upstream.url);
    const response = await raw(url, get('/', 'bob'));
    upstream.close();
    assert.equal(response.status, 200);
    assert.ok(response.body.length < 100, 'the client did not get a complete body');
  });

  it('forwards an upload sent with Expect: 100-continue (the proxy answers the 100 itself)', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const response = await raw(
      url,
      `POST /upload HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`,
    );
    assert.match(response.all, /^HTTP\/1\.1 100 Continue\r\n/);
    assert.match(response.all, /\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.equal(upstream.seen.at(-1)?.body, 'hello');
    assert.equal(upstream.seen.at(-1)?.headers.expect, undefined);
  });

  it('sends a request an upstream refused to the next one, skips it while down and uses it again once back', async () => {
    const first = await startEchoUpstream();
    const second = await startEchoUpstream();
    const port = Number(new URL(first.url).port);
    first.server.closeAllConnections();
    await new Promise<void>((resolve) => first.server.close(() => resolve()));
    const clock = new ManualClock(Date.now());
    const { url } = await startProxy(first.url, { moreUpstreams: [second.url], upstreamClock: clock });
    for (let index = 0; index < 4; index++) assert.equal((await raw(url, get('/', 'bob'))).status, 200);
    assert.equal(second.seen.length, 4, 'every request answered by the live upstream');
    // A body cannot be sent twice: a POST to the dead upstream is not retried. Here the dead
    // one is skipped for a while, so the POST goes to the live one.
    const post = await raw(
      url,
      'POST /public HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi',
    );
    assert.equal(post.status, 200);
    assert.equal(second.seen.length, 5);
    const revived: string[] = [];
    const back = createServer((request, response) => {
      revived.push(request.url ?? '');
      response.end('back');
    });
    await new Promise<void>((resolve) => back.listen(port, '127.0.0.1', resolve));
    try {
      clock.advance(UPSTREAM_DOWN_MS);
      for (let index = 0; index < 4; index++) assert.equal((await raw(url, get('/', 'bob'))).status, 200);
      assert.equal(revived.length, 2, 'round robin again');
    } finally {
      back.closeAllConnections();
      back.close();
    }
  });

  it('answers 504 when the upstream does not answer in time', async () => {
    const upstream = await upstreamWith(() => {});
    const { url } = await startProxy(upstream.url, { headersTimeoutMs: 200 });
    const response = await raw(url, get('/', 'bob'));
    upstream.close();
    assert.equal(response.status, 504);
  });
});

describe('proxy bypass suite: nothing reaches a denied upstream path', () => {
  const attempts: { name: string; request: string; status: number[] }[] = [
    { name: 'plain', request: get('/admin', 'bob'), status: [403] },
    { name: 'double slash', request: get('//admin', 'bob'), status: [403] },
    { name: 'trailing segments', request: get('/admin/users/../settings', 'bob'), status: [403] },
    { name: 'dot segments around', request: get('/public/../admin', 'bob'), status: [403] },
    { name: 'encoded letters', request: get('/%61dmin', 'bob'), status: [403] },
    { name: '%2e%2e', request: get('/public/%2e%2e/admin', 'bob'), status: [400] },
    { name: 'mixed .%2e', request: get('/public/.%2E/admin', 'bob'), status: [400] },
    { name: '%2f', request: get('/public%2f..%2fadmin', 'bob'), status: [400] },
    { name: 'double encoding', request: get('/public/%252e%252e/admin', 'bob'), status: [400] },
    { name: 'double-encoded slash', request: get('/public%252fadmin', 'bob'), status: [400] },
    { name: 'backslash', request: get('/public\\..\\admin', 'bob'), status: [400] },
    { name: 'path parameter', request: get('/public/..;/admin', 'bob'), status: [400] },
    { name: 'matrix parameter', request: get('/admin;x=1', 'bob'), status: [400] },
    { name: 'NUL', request: get('/admin%00', 'bob'), status: [400] },
    { name: 'fragment', request: get('/admin#/users', 'bob'), status: [400] },
    { name: 'fragment after a dot segment', request: get('/public#/../admin', 'bob'), status: [400] },
    {
      name: "Vigil's paths through dot segments",
      request: get('/./.vigil/../admin', 'bob'),
      status: [400, 403],
    },
    {
      name: 'absolute URI naming another host',
      request: get('http://other.test/admin', 'bob'),
      status: [400],
    },
    {
      name: 'spoofed identity headers',
      request: get('/admin', 'bob', 'X-Vigil-User: alice\r\nX-Vigil-Groups: sre\r\n'),
      status: [403],
    },
    {
      name: 'no credentials, spoofed X-Vigil-User',
      request: get('/admin', undefined, 'X-Vigil-User: alice\r\n'),
      status: [401],
    },
    {
      name: 'unknown host',
      request: 'GET /admin HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n',
      status: [404, 403],
    },
    { name: 'missing host', request: 'GET /admin HTTP/1.1\r\nConnection: close\r\n\r\n', status: [400] },
    {
      name: 'two hosts',
      request: 'GET /admin HTTP/1.1\r\nHost: app.test\r\nHost: x.test\r\nConnection: close\r\n\r\n',
      status: [400],
    },
    {
      name: 'TE + CL smuggling',
      request:
        'POST /public HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\n\r\n',
      status: [400],
    },
    {
      name: 'CL + CL conflict',
      request:
        'POST /public HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc',
      status: [400],
    },
    {
      name: 'oversized headers',
      request: get('/admin', 'alice', `X-Big: ${'a'.repeat(20_000)}\r\n`),
      status: [431],
    },
  ];

  for (const attempt of attempts) {
    it(`${attempt.name} never reaches /admin`, async () => {
      const upstream = await startEchoUpstream();
      const { url } = await startProxy(upstream.url);
      const response = await raw(url, attempt.request);
      assert.ok(
        attempt.status.includes(response.status),
        `status ${response.status}, expected ${attempt.status.join('|')}`,
      );
      assert.deepEqual(reachedAdmin(upstream.seen), []);
    });
  }

  it('mixed case is a different path and reaches the upstream exactly as policy saw it', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const response = await raw(url, get('/ADMIN', 'bob'));
    assert.equal(response.status, 200);
    assert.equal(upstream.seen.at(-1)?.url, '/ADMIN');
  });

  it('drops forwarding, rewrite and method-override headers and a bearer token from an untrusted client', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const spoofed = [
      'X-Forwarded-Host: admin.corp.example',
      'X-Forwarded-Proto: https',
      'X-Forwarded-Prefix: /admin',
      'X-Forwarded-Port: 443',
      'X-Forwarded-Uri: /admin',
      'X-Original-URL: /admin',
      'X-Rewrite-URL: /admin',
      'X-Original-Host: admin.corp.example',
      'X-Original-Method: DELETE',
      'X-HTTP-Method-Override: DELETE',
      'X-Method-Override: DELETE',
      'Forwarded: for=10.9.9.9;host=admin.corp.example',
      'Authorization: Bearer some.token.value',
    ];
    const response = await raw(url, get('/', 'bob', `${spoofed.join('\r\n')}\r\n`));
    assert.equal(response.status, 200);
    const headers = upstream.seen.at(-1)?.headers ?? {};
    assert.equal(headers['x-forwarded-host'], 'app.test');
    assert.equal(headers['x-forwarded-proto'], 'http');
    for (const name of [
      'x-forwarded-prefix',
      'x-forwarded-port',
      'x-forwarded-uri',
      'x-original-url',
      'x-rewrite-url',
      'x-original-host',
      'x-http-method-override',
      'x-method-override',
      'forwarded',
      'authorization',
    ])
      assert.equal(headers[name], undefined, name);
    assert.ok(!JSON.stringify(headers).includes('admin'), JSON.stringify(headers));
  });

  it("keeps a trusted proxy's X-Forwarded-Proto and -Host, never the rewrite headers its clients sent", async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url, { trustedProxies: ['127.0.0.0/8'] });
    await raw(
      url,
      get(
        '/public',
        'bob',
        'X-Forwarded-Proto: https\r\nX-Forwarded-Host: app.test:443\r\nX-Original-URL: /admin/users\r\nX-Rewrite-URL: /admin\r\nX-Original-Method: DELETE\r\n',
      ),
    );
    const headers = upstream.seen.at(-1)?.headers ?? {};
    assert.equal(headers['x-forwarded-proto'], 'https');
    assert.equal(headers['x-forwarded-host'], 'app.test:443');
    for (const name of ['x-original-url', 'x-rewrite-url', 'x-original-method'])
      assert.equal(headers[name], undefined, name);
  });

  it('X-Forwarded-For from an untrusted client is replaced; from a trusted proxy it is extended', async () => {
    const upstream = await startEchoUpstream();
    const untrusted = await startProxy(upstream.url);
    await raw(untrusted.url, get('/', 'bob', 'X-Forwarded-For: 10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n'));
    assert.equal(upstream.seen.at(-1)?.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(upstream.seen.at(-1)?.headers['x-real-ip'], '127.0.0.1');
    assert.equal(untrusted.records.at(-1)?.sourceIp, '127.0.0.1');
    const trusted = await startProxy(upstream.url, { trustedProxies: ['127.0.0.0/8'] });
    await raw(trusted.url, get('/', 'bob', 'X-Forwarded-For: 203.0.113.7\r\n'));
    assert.equal(upstream.seen.at(-1)?.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(trusted.records.at(-1)?.sourceIp, '203.0.113.7');
  });
});

describe('forward-auth endpoint', () => {
  function auth(user: string | undefined, method: string, uri: string, extra = ''): string {
    const cookie = user ? `Cookie: _vigil_session=${user}\r\n` : '';
    return `GET /.vigil/auth HTTP/1.1\r\nHost: vigil.internal\r\nX-Forwarded-Method: ${method}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Uri: ${uri}\r\n${cookie}${extra}Connection: close\r\n\r\n`;
  }

  it('answers 200 with identity headers for an allowed request', async () => {
    const upstream = await startEchoUpstream();
    const { url, records } = await startProxy(upstream.url);
    const response = await raw(url, auth('alice', 'GET', '/admin/users'));
    assert.equal(response.status, 200);
    assert.match(response.all, /x-vigil-user: alice/i);
    assert.match(response.all, /x-vigil-assertion: ey/i);
    assert.equal(records.at(-1)?.via, 'forward-auth');
  });

  it('answers 403 for a denied request and 401 with a login Location for a browser without a session', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    assert.equal((await raw(url, auth('bob', 'GET', '/admin'))).status, 403);
    const browser = await raw(url, auth(undefined, 'GET', '/wiki?page=1', 'Accept: text/html\r\n'));
    assert.equal(browser.status, 401, 'auth_request only understands 2xx, 401 and 403');
    assert.match(browser.all, /location: https:\/\/app\.test\/\.vigil\/login\?rd=%2Fwiki%3Fpage%3D1/i);
    assert.equal((await raw(url, auth(undefined, 'GET', '/wiki'))).status, 401);
  });

  it("understands Envoy ext_authz's appended path, method and Host", async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const envoy = (user: string, path: string) =>
      `DELETE /.vigil/auth${path} HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=${user}\r\nConnection: close\r\n\r\n`;
    assert.equal((await raw(url, envoy('alice', '/admin/users?x=1'))).status, 200);
    assert.equal((await raw(url, envoy('bob', '/admin/users'))).status, 403);
    assert.equal((await raw(url, envoy('bob', '/public/%2e%2e/admin'))).status, 400);
  });

  it("on Envoy's form decides on the request itself, never on X-Forwarded-Uri, -Method or -Host a client sent", async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const spoofing =
      'GET /.vigil/auth/admin/users HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nX-Forwarded-Uri: /public\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: other.test\r\nConnection: close\r\n\r\n';
    assert.equal((await raw(url, spoofing)).status, 403);
  });

  it("sends a browser to login with a 302 on Envoy's form and with ?redirect=1 (Traefik); 401 to API clients", async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const envoy = (accept: string) =>
      `GET /.vigil/auth/wiki?page=1 HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Proto: https\r\nAccept: ${accept}\r\nConnection: close\r\n\r\n`;
    const browser = await raw(url, envoy('text/html'));
    assert.equal(browser.status, 302);
    assert.match(browser.all, /location: https:\/\/app\.test\/\.vigil\/login\?rd=%2Fwiki%3Fpage%3D1/i);
    assert.equal((await raw(url, envoy('application/json'))).status, 401);
    const traefik = await raw(
      url,
      auth(undefined, 'GET', '/wiki', 'Accept: text/html\r\n').replace(
        '/.vigil/auth ',
        '/.vigil/auth?redirect=1 ',
      ),
    );
    assert.equal(traefik.status, 302);
    assert.match(traefik.all, /location: https:\/\/app\.test\/\.vigil\/login\?rd=%2Fwiki/i);
  });

  it('refuses a request that does not say which path it is about', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    const response = await raw(
      url,
      'GET /.vigil/auth HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\nConnection: close\r\n\r\n',
    );
    assert.equal(response.status, 400);
    assert.match(response.body, /forward-auth-uri-missing/);
  });

  it('applies rate limits and the lockout, to the client a trusted front proxy names last', async () => {
    const upstream = await startEchoUpstream();
    const limiter = new AccessLimiter(
      {
        requests: new MemoryWindowCounter(60_000),
        denials: new MemoryWindowCounter(300_000, undefined, { lockAt: 2 }),
      },
      { perSource: 0, perIdentity: 0, lockoutDenials: 2 },
    );
    const { url, records } = await startProxy(upstream.url, { limiter, trustedProxies: ['127.0.0.0/8'] });
    // The client wrote the first X-Forwarded-For entry itself; the front proxy added the last.
    const from = 'X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n';
    assert.equal((await raw(url, auth('bob', 'GET', '/admin', from))).status, 403);
    assert.equal(records.at(-1)?.sourceIp, '203.0.113.9');
    assert.equal((await raw(url, auth('bob', 'GET', '/admin', from))).status, 403);
    const locked = await raw(url, auth('alice', 'GET', '/admin', from));
    assert.equal(locked.status, 403, 'nginx takes anything but 401/403 for an error of its own');
    assert.match(locked.body, /"error":"locked-out"/);
    const viaTraefik = auth('alice', 'GET', '/admin', from).replace(
      '/.vigil/auth ',
      '/.vigil/auth?redirect=1 ',
    );
    assert.equal((await raw(url, viaTraefik)).status, 429);
    const other = 'X-Forwarded-For: 203.0.113.10\r\n';
    assert.equal((await raw(url, auth('alice', 'GET', '/admin', other))).status, 200);
  });

  it("behind a front proxy it does not trust, one user's denials lock nobody out, and it says what to set", async () => {
    const upstream = await startEchoUpstream();
    const limiter = new AccessLimiter(
      {
        requests: new MemoryWindowCounter(60_000),
        denials: new MemoryWindowCounter(300_000, undefined, { lockAt: 2 }),
      },
      { perSource: 3, perIdentity: 0, lockoutDenials: 2 },
    );
    const warnings: string[] = [];
    const { url } = await startProxy(upstream.url, {
      limiter,
      onWarning: (message) => warnings.push(message),
    });
    for (let index = 0; index < 5; index++)
      assert.equal((await raw(url, auth('bob', 'GET', '/admin'))).status, 403);
    assert.equal((await raw(url, auth('alice', 'GET', '/admin'))).status, 200, 'not locked out, not limited');
    assert.equal(warnings.length, 1, 'said once');
    assert.match(warnings[0] ?? '', /127\.0\.0\.1.*server\.trusted_proxies/);
  });

  it('shows a browser that is rate limited a page, and an API client JSON', async () => {
    const upstream = await startEchoUpstream();
    const limiter = new AccessLimiter(
      { requests: new MemoryWindowCounter(60_000), denials: new MemoryWindowCounter(300_000) },
      { perSource: 1, perIdentity: 0, lockoutDenials: 0 },
    );
    const { url } = await startProxy(upstream.url, { limiter });
    assert.equal((await raw(url, get('/', 'bob'))).status, 200);
    const page = await raw(url, get('/', 'bob', 'Accept: text/html\r\n'));
    assert.equal(page.status, 429);
    assert.match(page.all, /content-type: text\/html/i);
    assert.match(page.body, /<h1>Too many requests<\/h1>/);
    assert.match(page.body, /Request id <code>[0-9a-f]+-[0-9a-z]+<\/code>/);
    const api = await raw(url, get('/', 'bob'));
    assert.equal(api.status, 429);
    assert.match(api.body, /"error":"rate-limited"/);
  });

  it('applies the same path normalization to X-Forwarded-Uri', async () => {
    const upstream = await startEchoUpstream();
    const { url } = await startProxy(upstream.url);
    assert.equal((await raw(url, auth('bob', 'GET', '/public/%2e%2e/admin'))).status, 400);
    assert.equal((await raw(url, auth('bob', 'GET', '//admin'))).status, 403);
  });
});

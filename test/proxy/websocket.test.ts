import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { IDENTITIES, startProxy } from '../support/proxy-harness.ts';
import { certificates } from '../support/tls.ts';
import { tempDir } from '../support/tmp.ts';
import { startEchoSocketServer } from '../support/websocket.ts';

/** Writes `text` on a raw connection and collects everything until the proxy closes it. */
function rawExchange(proxyUrl: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(proxyUrl).port), '127.0.0.1', () => socket.write(text));
    socket.setTimeout(3000, () => socket.destroy());
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(data));
  });
}

const HANDSHAKE =
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

function open(proxyUrl: string, user: string | undefined, path = '/live'): WebSocket {
  const url = proxyUrl.replace('http://', 'ws://');
  return new WebSocket(`${url}${path}`, {
    headers: { host: 'app.test', ...(user ? { cookie: `_vigil_session=${user}` } : {}) },
  });
}

async function nextMessage(socket: WebSocket): Promise<string> {
  const [data] = (await once(socket, 'message', { signal: AbortSignal.timeout(5000) })) as [Buffer];
  return String(data);
}

describe('WebSocket through the proxy', () => {
  it('an allowed user opens a socket that echoes, with identity headers upstream', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    const { url, server, proxy } = await startProxy(upstream);
    server.on('upgrade', proxy.handleUpgrade);
    const socket = open(url, 'bob');
    const greeting = nextMessage(socket);
    await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
    assert.equal(await greeting, 'hello bob');
    socket.send('ping');
    assert.equal(await nextMessage(socket), 'echo ping');
    socket.close();
  });

  it('a denied user never upgrades', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    const { url, server, proxy } = await startProxy(upstream);
    server.on('upgrade', proxy.handleUpgrade);
    for (const [user, path, status] of [
      ['carol', '/live', 403],
      [undefined, '/live', 401],
      ['bob', '/admin/live', 403],
      ['bob', '/admin;x=1', 400],
    ] as const) {
      const socket = open(url, user, path);
      const [, response] = (await once(socket, 'unexpected-response', {
        signal: AbortSignal.timeout(5000),
      })) as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, status, `${user} ${path}`);
      socket.on('error', () => {});
      socket.terminate();
    }
  });

  it('an upstream that answers a handshake with anything but 101 gets nothing more from the client', async () => {
    // A keep-alive upstream that is no WebSocket server: were the sockets joined before its
    // answer, the request written after the handshake would reach it unchecked.
    const seen: string[] = [];
    const plain = createServer((request: IncomingMessage, response) => {
      seen.push(request.url ?? '');
      response.end(`you reached ${request.url}`);
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    after(() => {
      plain.closeAllConnections();
      plain.close();
    });
    const { url, server, proxy } = await startProxy(
      `http://127.0.0.1:${(plain.address() as AddressInfo).port}`,
    );
    server.on('upgrade', proxy.handleUpgrade);
    const answer = await rawExchange(
      url,
      `GET /live HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\n${HANDSHAKE}\r\n` +
        'GET /admin/secret HTTP/1.1\r\nHost: app.test\r\nX-Vigil-User: alice\r\n\r\n',
    );
    assert.match(answer, /^HTTP\/1\.1 502 /);
    assert.match(answer, /upgrade-refused-by-upstream/);
    assert.doesNotMatch(answer, /you reached/);
    assert.deepEqual(seen, ['/live']);
  });

  it('refuses upgrades to anything but WebSocket (h2c would hide later requests)', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    const { url, server, proxy } = await startProxy(upstream);
    server.on('upgrade', proxy.handleUpgrade);
    const answer = await rawExchange(
      url,
      'GET /live HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=alice\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
    );
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /unsupported-upgrade/);
  });

  it('answers 502 when the upstream is down, and reaches a TLS upstream through its private CA', async () => {
    const down = await startProxy('http://127.0.0.1:1');
    down.server.on('upgrade', down.proxy.handleUpgrade);
    const refused = open(down.url, 'bob');
    const [, response] = (await once(refused, 'unexpected-response', {
      signal: AbortSignal.timeout(5000),
    })) as [unknown, { statusCode: number }];
    assert.equal(response.statusCode, 502);
    refused.on('error', () => {});
    refused.terminate();

    const files = certificates(tempDir('vigil-ws-tls-'));
    const upstream = await startEchoSocketServer({
      greet: true,
      server: createHttpsServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }),
    });
    const { url, server, proxy } = await startProxy(upstream, { upstreamCa: readFileSync(files.ca, 'utf8') });
    server.on('upgrade', proxy.handleUpgrade);
    const socket = open(url, 'bob');
    const greeting = nextMessage(socket);
    await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
    assert.equal(await greeting, 'hello bob');
    socket.close();
  });

  it('closes an open socket when its session is revoked', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    const { url, server, proxy } = await startProxy(upstream);
    server.on('upgrade', proxy.handleUpgrade);
    const socket = open(url, 'alice');
    const greeting = nextMessage(socket);
    await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
    await greeting;
    const closed = once(socket, 'close', { signal: AbortSignal.timeout(5000) });
    assert.equal(proxy.closeConnectionsOf('sess-alice'), 1);
    await closed;
    assert.equal(socket.readyState, WebSocket.CLOSED);
  });

  it('closes a socket on its own once the session stops authenticating (expiry, reload), without being told', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    const { url, server, proxy } = await startProxy(upstream, { revalidateEveryMs: 50 });
    server.on('upgrade', proxy.handleUpgrade);
    const socket = open(url, 'alice');
    const greeting = nextMessage(socket);
    await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
    await greeting;
    const saved = IDENTITIES.alice;
    delete IDENTITIES.alice;
    try {
      await once(socket, 'close', { signal: AbortSignal.timeout(5000) });
    } finally {
      if (saved) IDENTITIES.alice = saved;
    }
  });

  it('revalidation closes a socket whose client certificate has been revoked since', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    let refusal: string | undefined;
    const { url, server, proxy } = await startProxy(upstream, { peerRefusal: () => refusal });
    server.on('upgrade', proxy.handleUpgrade);
    const socket = open(url, 'alice');
    const greeting = nextMessage(socket);
    await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
    await greeting;
    refusal = 'cert-revoked';
    const closed = once(socket, 'close', { signal: AbortSignal.timeout(5000) });
    assert.equal(await proxy.revalidateConnections(), 1);
    await closed;
  });

  it('revalidation closes a socket whose session no longer authenticates, and keeps the others', async () => {
    const upstream = await startEchoSocketServer({ greet: true });
    const { url, server, proxy } = await startProxy(upstream);
    server.on('upgrade', proxy.handleUpgrade);
    const opened = async (user: string) => {
      const socket = open(url, user);
      const greeting = nextMessage(socket);
      await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
      await greeting;
      return socket;
    };
    const alice = await opened('alice');
    const bob = await opened('bob');
    const saved = IDENTITIES.alice;
    delete IDENTITIES.alice;
    try {
      const closed = once(alice, 'close', { signal: AbortSignal.timeout(5000) });
      assert.equal(await proxy.revalidateConnections(), 1);
      await closed;
      bob.send('still here');
      assert.equal(await nextMessage(bob), 'echo still here');
    } finally {
      if (saved) IDENTITIES.alice = saved;
      bob.close();
    }
  });
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { IDENTITIES, startProxy } from '../support/proxy-harness.ts';

/** A WebSocket echo upstream that also reports the identity header it received. */
async function startEchoSocketServer(): Promise<string> {
  const server = createServer();
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, request) => {
    socket.send(`hello ${String(request.headers['x-vigil-user'] ?? 'nobody')}`);
    socket.on('message', (data) => socket.send(`echo ${String(data)}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    for (const client of sockets.clients) client.terminate();
    sockets.close();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

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
    const upstream = await startEchoSocketServer();
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
    const upstream = await startEchoSocketServer();
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

  it('closes an open socket when its session is revoked', async () => {
    const upstream = await startEchoSocketServer();
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

  it('revalidation closes a socket whose session no longer authenticates, and keeps the others', async () => {
    const upstream = await startEchoSocketServer();
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

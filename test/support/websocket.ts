import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import { WebSocketServer } from 'ws';

/**
 * A WebSocket upstream on loopback answering each message with `echo <message>`; with
 * `greet`, it first sends `hello <X-Vigil-User it received>`. `server` (an HTTPS one)
 * replaces the plain HTTP server. Closed after the test; resolves with its URL.
 */
export async function startEchoSocketServer(
  options: { server?: Server; greet?: boolean } = {},
): Promise<string> {
  const server = options.server ?? createServer();
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, request) => {
    if (options.greet) socket.send(`hello ${String(request.headers['x-vigil-user'] ?? 'nobody')}`);
    socket.on('message', (data) => socket.send(`echo ${String(data)}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    for (const client of sockets.clients) client.terminate();
    sockets.close();
    server.close();
  });
  const scheme = 'cert' in server ? 'https' : 'http';
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

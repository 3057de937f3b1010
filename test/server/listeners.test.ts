import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createListener } from '../../src/server/listeners.ts';

/** Reads one Content-Length response off `socket`. */
function response(socket: ReturnType<typeof connect>): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(data)?.[1] ?? -1);
      if (end >= 0 && length >= 0 && data.length >= end + 4 + length) {
        socket.off('data', onData);
        resolve(data);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`connection closed after ${JSON.stringify(data)}`)));
  });
}

describe('listeners', () => {
  it('answer 408 to a request whose body is still arriving after server.request_timeout', async () => {
    const server = createListener(
      (request, reply) => {
        request.resume();
        request.on('end', () => reply.end('ok'));
      },
      undefined,
      undefined,
      1000,
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nslow');
    const started = Date.now();
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
    });
    await once(socket, 'close', { signal: AbortSignal.timeout(10_000) });
    assert.match(data, /^HTTP\/1\.1 408/);
    assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
    server.close();
  });

  it('keep an idle keep-alive connection open past Node’s 5 s default (load balancers reuse them)', {
    timeout: 15_000,
  }, async () => {
    const server = createListener((_request, reply) => reply.end('ok'), undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const request = 'GET / HTTP/1.1\r\nHost: test\r\n\r\n';
    socket.write(request);
    assert.match(await response(socket), /^HTTP\/1\.1 200/);
    let closed = false;
    socket.once('close', () => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    assert.equal(closed, false, 'the server closed the idle connection');
    socket.write(request);
    assert.match(await response(socket), /^HTTP\/1\.1 200/);
    socket.destroy();
    server.closeAllConnections();
    server.close();
  });
});

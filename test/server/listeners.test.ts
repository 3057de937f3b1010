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

// A response header that Node's writeHead refuses, after undici accepted it. Latent:
// undici's parser refuses every byte writeHead refuses, so the refusal is simulated by
// appending a bad header when the upstream marks its response with `x-poison`. The
// half-written response cannot carry a clean answer: the proxy must close the client's
// connection promptly, never send a malformed message (a 502 with a body-less 204's
// framing would desynchronise a keep-alive connection).
import assert from 'node:assert/strict';
import { createServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { startProxy } from '../support/proxy-harness.ts';

function raw(url: string, text: string, ms = 1500): Promise<{ all: string; timedOut: boolean }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(text));
    let all = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, ms);
    socket.on('data', (chunk) => {
      all += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ all, timedOut });
    });
  });
}

describe('proxy: a response header that writeHead refuses', () => {
  const original = ServerResponse.prototype.writeHead;
  after(() => {
    ServerResponse.prototype.writeHead = original;
  });

  for (const status of [200, 204, 304]) {
    it(`closes the client's connection without a broken answer (upstream ${status})`, async () => {
      const upstream = createServer((_request, response) => {
        response.writeHead(status, { 'x-poison': '1' });
        response.end();
      });
      upstream.listen(0, '127.0.0.1');
      await new Promise((resolve) => upstream.once('listening', resolve));
      const { url } = await startProxy(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
      ServerResponse.prototype.writeHead = function (this: ServerResponse, code: number, ...rest: unknown[]) {
        const headers = rest.at(-1);
        if (Array.isArray(headers) && headers.some((name) => String(name).toLowerCase() === 'x-poison')) {
          return (original as (...args: unknown[]) => ServerResponse).call(this, code, [
            ...headers,
            'X-Refused',
            'a\u0001b',
          ]);
        }
        return (original as (...args: unknown[]) => ServerResponse).call(this, code, ...rest);
      } as typeof original;
      const response = await raw(
        url,
        'GET / HTTP/1.1\r\nHost: app.test\r\nCookie: _vigil_session=bob\r\n\r\n',
      );
      ServerResponse.prototype.writeHead = original;
      upstream.closeAllConnections();
      upstream.close();
      assert.equal(response.timedOut, false, 'the connection was closed, not left waiting');
      assert.equal(
        response.all,
        '',
        `nothing half-written reached the client: ${JSON.stringify(response.all)}`,
      );
    });
  }
});

import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { type RedirectTargets, redirectToHttps } from '../../src/server/https-redirect.ts';

/** What the redirect listener answers `host` and `path` with. */
async function answer(targets: RedirectTargets, host: string, path = '/a?b=1') {
  const server = createServer((request, response) => redirectToHttps(request, response, targets));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => server.close());
  return new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port: (server.address() as AddressInfo).port, path, headers: { host } },
      (response) => {
        response.resume();
        resolve({ status: response.statusCode ?? 0, location: response.headers.location });
      },
    );
    request.on('error', reject);
    request.end();
  });
}

describe('HTTP → HTTPS redirect', () => {
  const routes = [{ from: 'https://app.test' }, { from: 'https://ops.test:9443/tools' }];

  it("sends a route's host to the port users reach: the route's own, public_url's, else the listener's", async () => {
    const direct = { listenerPort: 8443, routes, publicUrl: undefined };
    assert.deepEqual(await answer(direct, 'app.test'), {
      status: 308,
      location: 'https://app.test:8443/a?b=1',
    });
    assert.deepEqual(await answer(direct, 'ops.test:80'), {
      status: 308,
      location: 'https://ops.test:9443/a?b=1',
    });
    const balanced = { listenerPort: 8443, routes, publicUrl: 'https://vigil.corp.example' };
    assert.deepEqual(await answer(balanced, 'app.test'), { status: 308, location: 'https://app.test/a?b=1' });
    const onPort = { listenerPort: 8443, routes, publicUrl: 'https://vigil.corp.example:4443' };
    assert.deepEqual(await answer(onPort, 'APP.test'), {
      status: 308,
      location: 'https://app.test:4443/a?b=1',
    });
  });

  it('answers 404 for a host no route names, so it cannot be made to redirect elsewhere', async () => {
    const targets = { listenerPort: 443, routes, publicUrl: undefined };
    assert.equal((await answer(targets, 'evil.test')).status, 404);
    assert.equal((await answer(targets, 'app.test@evil.test')).status, 404);
    assert.equal((await answer(targets, 'app.test', 'http://evil.test/')).status, 404);
  });
});

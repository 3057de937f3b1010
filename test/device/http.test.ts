import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { GRANTS_PER_SOURCE } from '../../src/device/http.ts';
import { DEVICE_PATHS, deviceEndpoints } from '../../src/device/index.ts';
import { deviceEnv, deviceKey } from './helpers.ts';

describe('device endpoints', () => {
  it('limits the device grants one source address may start, so no client can lock out enrollment', async (t) => {
    const e = await deviceEnv(t);
    let source = '198.51.100.7';
    const handlers = deviceEndpoints({
      registry: e.registry,
      providers: [],
      whoIs: async () => undefined,
      sourceIp: () => source,
      now: () => e.clock.now(),
    });
    const server = createServer((request, response) => {
      const handler = handlers.get((request.url ?? '').split('?')[0] ?? '');
      if (handler) handler(request, response);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${DEVICE_PATHS.authorize}`;
    const { csr } = await deviceKey();
    const authorize = () =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ csr, name: 'laptop' }),
      });
    for (let index = 0; index < GRANTS_PER_SOURCE; index++) assert.equal((await authorize()).status, 200);
    const limited = await authorize();
    assert.equal(limited.status, 429);
    assert.equal(((await limited.json()) as { error: string }).error, 'ERR_DEVICE_AUTHORIZATION');
    source = '203.0.113.9';
    assert.equal((await authorize()).status, 200, 'another address is not affected');
    source = '198.51.100.7';
    e.clock.advance(600_000);
    assert.equal(
      (await authorize()).status,
      200,
      'the first address may start grants again after the window',
    );
  });
});

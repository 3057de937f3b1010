import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../src/internal/clock.ts';
import { UPSTREAM_DOWN_MS, UpstreamGroup } from '../../src/proxy/index.ts';

async function upstream(healthy: () => boolean): Promise<string> {
  const server = createServer((request, response) => {
    response.statusCode = request.url === '/healthz' && !healthy() ? 503 : 200;
    response.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('upstream groups', () => {
  it('rotate round robin and skip an upstream marked down until its time is up', async () => {
    const clock = new ManualClock();
    const group = new UpstreamGroup(['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'], {
      clock,
    });
    after(() => group.close());
    assert.deepEqual(
      [group.pick(), group.pick(), group.pick(), group.pick()].map((u) => u.url),
      ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3', 'http://127.0.0.1:1'],
    );
    group.markDown(group.upstreams[1]!);
    const picked = Array.from({ length: 4 }, () => group.pick().url);
    assert.ok(!picked.includes('http://127.0.0.1:2'));
    clock.advance(UPSTREAM_DOWN_MS);
    assert.ok(Array.from({ length: 3 }, () => group.pick().url).includes('http://127.0.0.1:2'));
  });

  it('still answers with some upstream when every one is down', () => {
    const group = new UpstreamGroup(['http://127.0.0.1:1']);
    after(() => group.close());
    group.markDown(group.upstreams[0]!);
    assert.equal(group.pick().url, 'http://127.0.0.1:1');
  });

  it('active health checks take a failing upstream out and bring it back when it recovers', async () => {
    let secondHealthy = false;
    const first = await upstream(() => true);
    const second = await upstream(() => secondHealthy);
    const group = new UpstreamGroup([first, second]);
    after(() => group.close());
    await group.checkHealth('/healthz');
    assert.deepEqual(
      Array.from({ length: 4 }, () => group.pick().url),
      [first, first, first, first],
    );
    secondHealthy = true;
    await group.checkHealth('/healthz');
    assert.ok(Array.from({ length: 2 }, () => group.pick().url).includes(second));
  });

  it('a health check to a closed port marks the upstream down', async () => {
    const first = await upstream(() => true);
    const group = new UpstreamGroup([first, 'http://127.0.0.1:1']);
    after(() => group.close());
    await group.checkHealth('/healthz');
    assert.deepEqual(
      Array.from({ length: 3 }, () => group.pick().url),
      [first, first, first],
    );
  });
});

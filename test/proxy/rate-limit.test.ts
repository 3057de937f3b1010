import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ManualClock } from '../../src/internal/clock.ts';
import { AccessLimiter, MemoryWindowCounter, RedisWindowCounter } from '../../src/proxy/index.ts';
import { startEchoUpstream, startProxy } from '../support/proxy-harness.ts';

const REDIS_URL = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

function status(url: string, user: string | undefined, path = '/'): Promise<number> {
  const { port } = new URL(url);
  const cookie = user ? `Cookie: _vigil_session=${user}\r\n` : '';
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: app.test\r\n${cookie}Connection: close\r\n\r\n`),
    );
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
  });
}

describe('window counters', () => {
  it('count per key within a window and start over in the next', () => {
    const clock = new ManualClock(60_000 * 100);
    const counter = new MemoryWindowCounter(60_000, clock);
    assert.equal(counter.hit('a'), 1);
    assert.equal(counter.hit('a'), 2);
    assert.equal(counter.hit('b'), 1);
    assert.equal(counter.peek('a'), 2);
    clock.advance(60_000);
    assert.equal(counter.peek('a'), 0);
    assert.equal(counter.hit('a'), 1);
  });

  it('share counts across replicas through the real Redis within one sync', async () => {
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const first = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
    const second = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
    const a = new RedisWindowCounter(first, { prefix, windowMs: 60_000, syncMs: 10_000 });
    const b = new RedisWindowCounter(second, { prefix, windowMs: 60_000, syncMs: 10_000 });
    after(async () => {
      await a.close();
      await b.close();
      first.disconnect();
      second.disconnect();
    });
    for (let index = 0; index < 3; index++) a.hit('ip:203.0.113.9');
    b.hit('ip:203.0.113.9');
    await a.sync();
    await b.sync();
    await a.sync();
    assert.equal(a.peek('ip:203.0.113.9'), 4, 'replica A sees both replicas');
    assert.equal(b.peek('ip:203.0.113.9'), 4, 'replica B sees both replicas');
    assert.equal(b.hit('ip:203.0.113.9'), 5);
  });

  it('keeps counting locally when Redis is down, and never loses events', async () => {
    const dead = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    dead.on('error', () => {});
    const counter = new RedisWindowCounter(dead, { prefix: 'x', windowMs: 60_000, syncMs: 10_000 });
    counter.hit('k');
    counter.hit('k');
    await counter.sync();
    assert.equal(counter.peek('k'), 2);
    assert.equal(counter.hit('k'), 3);
    await counter.close();
    dead.disconnect();
  });
});

describe('proxy rate limits and lockout', () => {
  it('answers 429 once a source exceeds its limit', async () => {
    const upstream = await startEchoUpstream();
    const requests = new MemoryWindowCounter(60_000);
    const denials = new MemoryWindowCounter(300_000);
    const limiter = new AccessLimiter(
      { requests, denials },
      { perSource: 3, perIdentity: 0, lockoutDenials: 0 },
    );
    const { url } = await startProxy(upstream.url, { limiter });
    const statuses = [];
    for (let index = 0; index < 5; index++) statuses.push(await status(url, 'bob'));
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  });

  it('locks out a source after repeated policy denials, even for an allowed request', async () => {
    const upstream = await startEchoUpstream();
    const limiter = new AccessLimiter(
      { requests: new MemoryWindowCounter(60_000), denials: new MemoryWindowCounter(300_000) },
      { perSource: 0, perIdentity: 0, lockoutDenials: 2 },
    );
    const { url } = await startProxy(upstream.url, { limiter });
    assert.equal(await status(url, undefined), 401, 'not logged in does not count');
    assert.equal(await status(url, undefined), 401);
    assert.equal(await status(url, 'bob'), 200);
    assert.equal(await status(url, 'bob', '/admin'), 403);
    assert.equal(await status(url, 'bob', '/admin'), 403);
    assert.equal(await status(url, 'alice'), 429, 'the source is locked out');
    assert.equal(upstream.seen.length, 1);
  });
});

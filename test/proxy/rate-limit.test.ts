import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { type Clock, ManualClock } from '../../src/internal/clock.ts';
import {
  AccessLimiter,
  type LimitSettings,
  MemoryWindowCounter,
  RedisWindowCounter,
} from '../../src/proxy/index.ts';
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

  it('share counts across replicas through the real Redis at the next sync after a hit', async () => {
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
    assert.equal(a.peek('ip:203.0.113.9'), 3, 'replica A has not hit the key since its sync');
    assert.equal(b.peek('ip:203.0.113.9'), 4, 'replica B sees both replicas');
    assert.equal(a.hit('ip:203.0.113.9'), 4);
    await a.sync();
    assert.equal(a.peek('ip:203.0.113.9'), 5, 'replica A learns the total with its next push');
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

const ALLOWED = { limited: false };
const LOCKED_OUT = { limited: true, error: 'locked-out' };
const RATE_LIMITED = { limited: true, error: 'rate-limited' };

interface Replica {
  limiter: AccessLimiter;
  requests: RedisWindowCounter;
  denials: RedisWindowCounter;
  errors: unknown[];
  /** Resolves once its connection to Redis is up. */
  connected(): Promise<void>;
}

/** One proxy replica's limiter on its own Redis connection, closed when the test ends. */
function replica(
  t: TestContext,
  prefix: string,
  options: {
    url?: string;
    settings?: Partial<LimitSettings>;
    clock?: Clock;
    syncMs?: number;
  } = {},
): Replica {
  const redis = new Redis(options.url ?? REDIS_URL, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: () => 50,
  });
  const errors: unknown[] = [];
  redis.on('error', (error) => errors.push(error));
  const settings: LimitSettings = { perSource: 0, perIdentity: 0, lockoutDenials: 3, ...options.settings };
  const common = {
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.syncMs !== undefined ? { syncMs: options.syncMs } : {}),
    onError: (error: unknown) => errors.push(error),
  };
  const requests = new RedisWindowCounter(redis, {
    prefix: `${prefix}:requests`,
    windowMs: 60_000,
    ...common,
  });
  const denials = new RedisWindowCounter(redis, {
    prefix: `${prefix}:denials`,
    windowMs: 300_000,
    lockAt: settings.lockoutDenials,
    ...common,
  });
  const limiter = new AccessLimiter({ requests, denials }, settings);
  t.after(async () => {
    await limiter.close();
    redis.disconnect();
  });
  const connected = (): Promise<void> =>
    redis.status === 'ready'
      ? Promise.resolve()
      : new Promise((resolve) => redis.once('ready', () => resolve()));
  return { limiter, requests, denials, errors, connected };
}

/** Polls until `done` holds; fails after `ms`. */
async function within(ms: number, what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Records unhandled rejections while a test runs. */
function unhandledRejections(t: TestContext): unknown[] {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  t.after(() => {
    process.off('unhandledRejection', listener);
  });
  return seen;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP relay to the test Redis that can be cut and restored, as a network partition. */
class RedisRelay {
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  port = 0;

  async open(): Promise<void> {
    const { hostname, port } = new URL(REDIS_URL);
    this.#server = createServer((client) => {
      const upstream = connect(Number(port || 6379), hostname);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          this.#sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    const server = this.#server;
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

describe('limits shared across replicas through the real Redis', () => {
  it('refuses on every replica, within a second, a source locked out on one that the others never saw', async (t) => {
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const a = replica(t, prefix);
    const b = replica(t, prefix);
    await Promise.all([a.connected(), b.connected()]);
    for (let index = 0; index < 3; index++) a.limiter.recordDenial('198.51.100.7');
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'at once on replica A');
    const start = Date.now();
    await within(1000, 'lockout reaches replica B', () => b.limiter.check('alice', '198.51.100.7').limited);
    assert.deepEqual(b.limiter.check('alice', '198.51.100.7'), LOCKED_OUT);
    assert.ok(Date.now() - start < 1000);
    assert.deepEqual(b.limiter.check('alice', '198.51.100.8'), ALLOWED, 'only that source');
    const c = replica(t, prefix);
    await within(
      1000,
      'a replica started after the lockout loads it from Redis',
      () => c.limiter.check(undefined, '198.51.100.7').limited,
    );
    assert.deepEqual(c.limiter.check(undefined, '198.51.100.8'), ALLOWED);
    assert.deepEqual([...a.errors, ...b.errors, ...c.errors], []);
  });

  it('locks out a source whose denials are split across replicas, on each of them', async (t) => {
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const a = replica(t, prefix);
    const b = replica(t, prefix);
    a.limiter.recordDenial('198.51.100.7');
    a.limiter.recordDenial('198.51.100.7');
    b.limiter.recordDenial('198.51.100.7');
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.7'), ALLOWED, 'two denials seen on A');
    assert.deepEqual(b.limiter.check(undefined, '198.51.100.7'), ALLOWED, 'one denial seen on B');
    await within(
      1000,
      'both replicas lock the source out',
      () =>
        a.limiter.check(undefined, '198.51.100.7').limited &&
        b.limiter.check(undefined, '198.51.100.7').limited,
    );
  });

  it('holds a lockout made just before its counting window ends for a full lockout_window from then, on every replica', async (t) => {
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const clock = new ManualClock();
    clock.advance(300_000 - 1_000 - (clock.now() % 300_000));
    const lockedAt = clock.now();
    const a = replica(t, prefix, { clock });
    const b = replica(t, prefix, { clock });
    for (let index = 0; index < 3; index++) a.limiter.recordDenial('198.51.100.7');
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'at once on replica A');
    await within(1000, 'lockout reaches replica B', () => b.limiter.check(undefined, '198.51.100.7').limited);
    const redis = new Redis(REDIS_URL);
    t.after(() => redis.disconnect());
    const locks = `${prefix}:denials:locked-until`;
    assert.equal(await redis.zcard(locks), 1);
    assert.equal(await redis.zscore(locks, '198.51.100.7'), String(lockedAt + 300_000), 'scored by its end');
    const ttl = await redis.pttl(locks);
    assert.ok(ttl > 0 && ttl <= 600_000, `the record in Redis expires (${ttl} ms)`);

    clock.advance(1_000);
    assert.equal(clock.now() % 300_000, 0, 'the counting window has just ended');
    assert.equal(a.denials.peek('198.51.100.8'), 0);
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'past the window on A');
    assert.deepEqual(b.limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'past the window on B');
    const c = replica(t, prefix, { clock });
    await within(
      1000,
      'a replica started after the window ended, which never saw the source, loads the lockout',
      () => c.limiter.check(undefined, '198.51.100.7').limited,
    );

    clock.advance(298_999);
    for (const [name, { limiter }] of Object.entries({ a, b, c })) {
      assert.deepEqual(limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, `until its end on ${name}`);
    }
    clock.advance(1);
    for (const [name, { limiter }] of Object.entries({ a, b, c })) {
      assert.deepEqual(limiter.check(undefined, '198.51.100.7'), ALLOWED, `ended on ${name}`);
    }
    const d = replica(t, prefix, { clock });
    await d.connected();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await d.denials.sync();
    assert.deepEqual(d.limiter.check(undefined, '198.51.100.7'), ALLOWED, 'a new replica loads none');

    // Its denials count afresh: three more lock it out again, for a full window again.
    b.limiter.recordDenial('198.51.100.7');
    b.limiter.recordDenial('198.51.100.7');
    assert.deepEqual(b.limiter.check(undefined, '198.51.100.7'), ALLOWED);
    b.limiter.recordDenial('198.51.100.7');
    await within(1000, 'the new lockout reaches A', () => a.limiter.check(undefined, '198.51.100.7').limited);
    assert.equal(await redis.zscore(locks, '198.51.100.7'), String(clock.now() + 300_000));
    assert.deepEqual([...a.errors, ...b.errors, ...c.errors, ...d.errors], []);
  });

  it('holds a lockout announced with a far-off end no longer than lockout_window from when it was heard', async (t) => {
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const clock = new ManualClock();
    const a = replica(t, prefix, { clock });
    await a.connected();
    const redis = new Redis(REDIS_URL);
    t.after(() => redis.disconnect());
    const channel = `${prefix}:denials:locked`;
    const listening = async (): Promise<boolean> => {
      const [, subscribers] = (await redis.pubsub('NUMSUB', channel)) as [string, number];
      return subscribers > 0;
    };
    while (!(await listening())) await new Promise((resolve) => setTimeout(resolve, 10));
    // As from a replica whose clock runs a day ahead.
    await redis.publish(channel, `${clock.now() + 86_400_000}:198.51.100.9`);
    await within(1000, 'A hears it', () => a.limiter.check(undefined, '198.51.100.9').limited);
    clock.advance(299_999);
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.9'), LOCKED_OUT);
    clock.advance(1);
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.9'), ALLOWED);
    await redis.publish(channel, `${clock.now() - 1}:198.51.100.10`);
    await redis.publish(channel, 'not-a-time:198.51.100.11');
    await redis.publish(channel, `${clock.now() + 1_000}:198.51.100.12`);
    await within(1000, 'A hears the last', () => a.limiter.check(undefined, '198.51.100.12').limited);
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.10'), ALLOWED, 'an ended lock is dropped');
    assert.deepEqual(a.limiter.check(undefined, '198.51.100.11'), ALLOWED, 'a malformed one too');
  });

  it('adds up per-source and per-identity rate limits across replicas', async (t) => {
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const settings = { perSource: 5, perIdentity: 8, lockoutDenials: 0 };
    const a = replica(t, prefix, { settings, syncMs: 60_000 });
    const b = replica(t, prefix, { settings, syncMs: 60_000 });
    await Promise.all([a.connected(), b.connected()]);
    // Requests alternate between the replicas, which sync after each round (as on their
    // timers): together they allow the limit plus one sync interval's lag, not twice it.
    const allowed = { a: 0, b: 0 };
    for (let round = 0; round < 6; round++) {
      if (!a.limiter.check(undefined, '192.0.2.1').limited) allowed.a++;
      if (!b.limiter.check(undefined, '192.0.2.1').limited) allowed.b++;
      await a.requests.sync();
      await b.requests.sync();
    }
    assert.deepEqual(allowed, { a: 3, b: 3 }, 'five, and the one request A made before it synced the fifth');
    assert.deepEqual(a.limiter.check(undefined, '192.0.2.1'), RATE_LIMITED);
    assert.deepEqual(b.limiter.check(undefined, '192.0.2.1'), RATE_LIMITED);

    // A replica learns others' counts with its own next sync: one interval late at most.
    for (let index = 0; index < 5; index++) a.limiter.check(undefined, '192.0.2.2');
    await a.requests.sync();
    assert.deepEqual(b.limiter.check(undefined, '192.0.2.2'), ALLOWED, 'B has not synced this source yet');
    await b.requests.sync();
    assert.deepEqual(b.limiter.check(undefined, '192.0.2.2'), RATE_LIMITED);

    // One identity from many sources, on both replicas.
    let identityAllowed = 0;
    for (let round = 0; round < 8; round++) {
      if (!a.limiter.check('bob', `192.0.2.${10 + round}`).limited) identityAllowed++;
      if (!b.limiter.check('bob', `192.0.2.${30 + round}`).limited) identityAllowed++;
      await a.requests.sync();
      await b.requests.sync();
    }
    assert.equal(identityAllowed, 9, 'eight, and one of sync lag');
    assert.deepEqual([...a.errors, ...b.errors], []);
  });

  it('keeps limits and lockout local when Redis is unreachable, without crashing', async (t) => {
    const rejections = unhandledRejections(t);
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const url = `redis://127.0.0.1:${await closedPort()}`;
    const settings = { perSource: 2, perIdentity: 0, lockoutDenials: 3 };
    const dead = replica(t, prefix, { url, settings, syncMs: 20 });
    const live = replica(t, prefix, { settings });
    for (let index = 0; index < 3; index++) dead.limiter.recordDenial('198.51.100.7');
    assert.deepEqual(dead.limiter.check(undefined, '198.51.100.7'), LOCKED_OUT);
    assert.deepEqual(dead.limiter.check(undefined, '192.0.2.1'), ALLOWED);
    assert.deepEqual(dead.limiter.check(undefined, '192.0.2.1'), ALLOWED);
    assert.deepEqual(dead.limiter.check(undefined, '192.0.2.1'), RATE_LIMITED);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await dead.denials.sync();
    await dead.requests.sync();
    assert.ok(dead.errors.length > 0, 'the failures are reported');
    assert.deepEqual(dead.limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'still, after failed syncs');
    assert.deepEqual(dead.limiter.check(undefined, '192.0.2.1'), RATE_LIMITED);
    assert.deepEqual(live.limiter.check(undefined, '198.51.100.7'), ALLOWED, 'nothing reached Redis');
    assert.deepEqual(rejections, []);
  });

  it('learns lockouts announced while it was cut off from Redis once it reconnects', async (t) => {
    const rejections = unhandledRejections(t);
    const prefix = `vigil-test:${randomBytes(4).toString('hex')}`;
    const relay = new RedisRelay();
    await relay.open();
    t.after(() => relay.cut());
    const a = replica(t, prefix);
    const b = replica(t, prefix, { url: `redis://127.0.0.1:${relay.port}` });
    for (let index = 0; index < 3; index++) a.limiter.recordDenial('198.51.100.1');
    await within(1000, 'B hears lockouts', () => b.limiter.check(undefined, '198.51.100.1').limited);

    await relay.cut();
    for (let index = 0; index < 3; index++) a.limiter.recordDenial('198.51.100.2');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(b.limiter.check(undefined, '198.51.100.2'), ALLOWED, 'B cannot have heard it');
    b.limiter.recordDenial('198.51.100.3');
    b.limiter.recordDenial('198.51.100.3');
    b.limiter.recordDenial('198.51.100.3');
    assert.deepEqual(b.limiter.check(undefined, '198.51.100.3'), LOCKED_OUT, 'B locks out on its own');

    await relay.open();
    await within(
      2000,
      'B loads the lockout it missed',
      () => b.limiter.check(undefined, '198.51.100.2').limited,
    );
    await within(
      1000,
      'A hears the lockout B made while cut off',
      () => a.limiter.check(undefined, '198.51.100.3').limited,
    );
    assert.deepEqual(rejections, []);
  });
});

describe('lockout in one process', () => {
  const settings = { perSource: 0, perIdentity: 0, lockoutDenials: 3 };

  it('holds a source locked just before its counting window ends for a full lockout_window from then', () => {
    const clock = new ManualClock();
    clock.advance(300_000 - 1_000 - (clock.now() % 300_000));
    const denials = new MemoryWindowCounter(300_000, clock, { lockAt: 3 });
    const limiter = new AccessLimiter(
      { requests: new MemoryWindowCounter(60_000, clock), denials },
      settings,
    );
    for (let index = 0; index < 3; index++) limiter.recordDenial('198.51.100.7');
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), LOCKED_OUT);
    clock.advance(1_000);
    assert.equal(clock.now() % 300_000, 0, 'the counting window has just ended');
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'a moment after the window');
    clock.advance(298_999);
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'until lockout_window after');
    assert.deepEqual(limiter.check(undefined, '198.51.100.8'), ALLOWED, 'only that source');
    clock.advance(1);
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), ALLOWED, 'then unlocked');
    limiter.recordDenial('198.51.100.7');
    limiter.recordDenial('198.51.100.7');
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), ALLOWED, 'its denials count afresh');
    limiter.recordDenial('198.51.100.7');
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), LOCKED_OUT);
    clock.advance(299_999);
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), LOCKED_OUT, 'for a full window again');
    clock.advance(1);
    assert.deepEqual(limiter.check(undefined, '198.51.100.7'), ALLOWED);
  });

  it('counts as before without lockAt: a count ends with its window', () => {
    const clock = new ManualClock();
    const counter = new MemoryWindowCounter(300_000, clock);
    for (let index = 0; index < 3; index++) counter.hit('k');
    clock.advance(300_000 - (clock.now() % 300_000));
    assert.equal(counter.peek('k'), 0);
  });

  it('refuses a lockAt that is not a non-negative integer', () => {
    assert.throws(() => new MemoryWindowCounter(1_000, undefined, { lockAt: -1 }), TypeError);
    assert.throws(() => new MemoryWindowCounter(1_000, undefined, { lockAt: 1.5 }), TypeError);
    // A limiter whose denial counter would not lock (or locks at another count) is a wiring bug.
    const settings = { perSource: 0, perIdentity: 0, lockoutDenials: 3 };
    const requests = new MemoryWindowCounter(60_000);
    assert.throws(
      () => new AccessLimiter({ requests, denials: new MemoryWindowCounter(300_000) }, settings),
      /must lock at lockoutDenials \(3\), not 0/,
    );
    assert.throws(
      () =>
        new AccessLimiter(
          { requests, denials: new MemoryWindowCounter(300_000, undefined, { lockAt: 2 }) },
          settings,
        ),
      TypeError,
    );
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
      {
        requests: new MemoryWindowCounter(60_000),
        denials: new MemoryWindowCounter(300_000, undefined, { lockAt: 2 }),
      },
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

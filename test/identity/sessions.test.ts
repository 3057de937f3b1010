import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isVigilError } from '../../src/errors.ts';
import {
  type NewSession,
  type RefreshOutcome,
  resolveSessionKey,
  Sealer,
  SessionManager,
} from '../../src/identity/index.ts';
import { ManualClock, systemClock } from '../../src/internal/clock.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { silentLogger } from '../../src/telemetry/index.ts';
import { freshPostgresUrl, freshSqliteUrl } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';

const HOUR = 3_600_000;
const key = randomBytes(32);

const alice: NewSession = {
  idp: 'dev',
  subject: 'alice',
  email: 'alice@example.com',
  groups: ['engineering', 'sre'],
  amr: ['pwd', 'mfa'],
  acr: undefined,
  authTime: 0,
  claims: { sub: 'alice', email: 'alice@example.com' },
  deviceId: 'laptop-1',
  refreshToken: 'rt-alice',
};

async function open(url: string): Promise<Store> {
  const store = await openStore(url);
  after(() => store.close());
  return store;
}

async function lastSeenOf(store: Store, id: string): Promise<number> {
  const row = await store.db
    .selectFrom('sessions')
    .select('last_seen_at')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return row.last_seen_at;
}

async function manager(
  store: Store,
  clock: ManualClock | typeof systemClock,
  extra: Partial<ConstructorParameters<typeof SessionManager>[0]> = {},
) {
  const sessions = new SessionManager({
    store,
    clock,
    logger: silentLogger(),
    key,
    policy: { maxAgeMs: 12 * HOUR, idleTimeoutMs: HOUR },
    ...extra,
  });
  await sessions.start();
  after(() => sessions.close());
  return sessions;
}

describe('session lifetime (ManualClock)', () => {
  it('ends a session after the idle timeout, and activity keeps it alive', async () => {
    const clock = new ManualClock();
    const sessions = await manager(await open(freshSqliteUrl()), clock);
    const { cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    const first = sessions.lookup(cookie);
    assert.equal(first.identity?.userId, 'dev:alice');
    assert.deepEqual(first.identity?.groups, ['engineering', 'sre']);
    assert.deepEqual(first.identity?.amr, ['pwd', 'mfa']);
    assert.equal(first.identity?.deviceId, 'laptop-1');
    clock.advance(HOUR - 1000);
    assert.ok(sessions.lookup(cookie).identity, 'used just before the idle timeout');
    clock.advance(HOUR - 1000);
    assert.ok(sessions.lookup(cookie).identity, 'the previous use reset the idle clock');
    clock.advance(HOUR);
    assert.equal(sessions.lookup(cookie).reason, 'session-idle');
  });

  it('ends a session at its absolute max age however active it is', async () => {
    const clock = new ManualClock();
    const sessions = await manager(await open(freshSqliteUrl()), clock);
    const { cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    for (let hour = 0; hour < 11; hour++) {
      clock.advance(HOUR - 60_000);
      assert.ok(sessions.lookup(cookie).identity, `hour ${hour}`);
    }
    clock.set(clock.now() + 12 * HOUR);
    assert.equal(sessions.lookup(cookie).reason, 'session-expired');
  });

  it('asks for a new login when the route wants a fresher one (reauth_after)', async () => {
    const clock = new ManualClock();
    const sessions = await manager(await open(freshSqliteUrl()), clock);
    const { cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    // Used every 50 minutes, so idle never ends it; only the age of the login matters.
    for (let step = 0; step < 4; step++) {
      clock.advance(50 * 60_000);
      assert.ok(sessions.lookup(cookie, { reauthAfterMs: 4 * HOUR }).identity, `step ${step}`);
    }
    clock.advance(50 * 60_000);
    assert.equal(sessions.lookup(cookie, { reauthAfterMs: 4 * HOUR }).reason, 'session-reauth-required');
    assert.ok(sessions.lookup(cookie).identity, 'a route without reauth_after still accepts it');
  });

  it('refuses forged, altered and foreign cookies', async () => {
    const clock = new ManualClock();
    const sessions = await manager(await open(freshSqliteUrl()), clock);
    const { id, cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    assert.equal(sessions.lookup(id).reason, 'session-cookie-invalid', 'the bare id is not a cookie');
    // A character in the middle: the last one of base64url may carry only padding bits,
    // and changing those leaves the bytes (and the seal) as they were.
    const middle = Math.floor(cookie.length / 2);
    const flipped = `${cookie.slice(0, middle)}${cookie[middle] === 'A' ? 'B' : 'A'}${cookie.slice(middle + 1)}`;
    assert.equal(sessions.lookup(flipped).reason, 'session-cookie-invalid');
    assert.equal(
      sessions.lookup(new Sealer(randomBytes(32), 'session cookie').seal(id)).reason,
      'session-cookie-invalid',
    );
    assert.equal(sessions.lookup(new Sealer(key, 'refresh token').seal(id)).reason, 'session-cookie-invalid');
    assert.equal(
      sessions.lookup(new Sealer(key, 'session cookie').seal('no-such-id')).reason,
      'session-unknown',
    );
    assert.equal(sessions.lookup('x'.repeat(100_000)).reason, 'session-cookie-invalid');
  });

  it('writes last-seen back in a batch and loads live sessions after a restart', async () => {
    const clock = new ManualClock();
    const store = await open(freshSqliteUrl());
    const sessions = await manager(store, clock);
    const { id, cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    clock.advance(10 * 60_000);
    sessions.lookup(cookie);
    await sessions.flush();
    assert.equal(await lastSeenOf(store, id), clock.now());
    const restarted = await manager(store, clock);
    assert.ok(restarted.lookup(cookie).identity);
  });

  it('a flush that meets another writer holding the lock keeps the times for the next one', async () => {
    const clock = new ManualClock();
    const file = join(tempDir(), 'vigil.db');
    const store = await open(`sqlite://${file}`);
    const sessions = await manager(store, clock);
    const created = await Promise.all(
      ['a', 'b', 'c'].map((subject) => sessions.create({ ...alice, subject, authTime: clock.now() })),
    );
    const lastSeen = async () =>
      (await store.db.selectFrom('sessions').select('last_seen_at').orderBy('id').execute()).map(
        (row) => row.last_seen_at,
      );
    const start = clock.now();
    clock.advance(60_000);
    for (const { cookie } of created) sessions.lookup(cookie);
    const other = new DatabaseSync(file);
    after(() => other.close());
    other.exec('begin immediate');
    await sessions.flush();
    assert.deepEqual(await lastSeen(), [start, start, start], 'nothing written while the lock is held');
    other.exec('rollback');
    clock.advance(60_000);
    sessions.lookup((created[0] as { cookie: string }).cookie);
    await sessions.flush();
    const seen = await store.db.selectFrom('sessions').select(['id', 'last_seen_at']).execute();
    const byId = new Map(seen.map((row) => [row.id, row.last_seen_at]));
    assert.equal(byId.get((created[0] as { id: string }).id), clock.now(), 'the later use wins');
    assert.equal(byId.get((created[1] as { id: string }).id), start + 60_000, 'kept from the refused flush');
    assert.equal(byId.get((created[2] as { id: string }).id), start + 60_000);

    // Close writes what is left.
    clock.advance(60_000);
    sessions.lookup((created[1] as { cookie: string }).cookie);
    await sessions.close();
    const row = await store.db
      .selectFrom('sessions')
      .select('last_seen_at')
      .where('id', '=', (created[1] as { id: string }).id)
      .executeTakeFirstOrThrow();
    assert.equal(row.last_seen_at, clock.now());
  });

  it('close waits for a flush under way and writes the times it could not', async () => {
    const clock = new ManualClock();
    const file = join(tempDir(), 'vigil.db');
    const store = await open(`sqlite://${file}`);
    const sessions = await manager(store, clock);
    const { id, cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    clock.advance(60_000);
    sessions.lookup(cookie);
    // Another process holds the write lock for a while (the audit writer of a replica, say).
    const holder = spawn(process.execPath, [
      '-e',
      `const { DatabaseSync } = require('node:sqlite');
       const db = new DatabaseSync(${JSON.stringify(file)});
       db.exec('begin immediate');
       process.stdout.write('locked\\n');
       setTimeout(() => { db.exec('rollback'); db.close(); }, 300);`,
    ]);
    await once(holder.stdout, 'data');
    const flushing = sessions.flush();
    const closing = sessions.close();
    await flushing;
    await closing;
    assert.equal(await lastSeenOf(store, id), clock.now());
  });

  it('a flush that fails part way keeps every time it did not get through', async () => {
    const clock = new ManualClock();
    const store = await open('sqlite://:memory:');
    const sessions = await manager(store, clock);
    const created = [];
    // More than one transaction's worth.
    for (let index = 0; index < 600; index++)
      created.push(await sessions.create({ ...alice, subject: `user-${index}`, authTime: clock.now() }));
    clock.advance(60_000);
    for (const { cookie } of created) sessions.lookup(cookie);
    const publish = store.changes.publish.bind(store.changes);
    let failures = 1;
    store.changes.publish = async (change) => {
      if (failures-- > 0) throw new Error('feed down');
      return publish(change);
    };
    await assert.rejects(sessions.flush(), /feed down/);
    await sessions.flush();
    const rows = await store.db.selectFrom('sessions').select('last_seen_at').execute();
    assert.equal(rows.length, 600);
    assert.deepEqual(new Set(rows.map((row) => row.last_seen_at)), new Set([clock.now()]));
  });

  it('revokes one session, a user (logout everywhere) and a device', async () => {
    const clock = new ManualClock();
    const sessions = await manager(await open(freshSqliteUrl()), clock);
    const a = await sessions.create({ ...alice, authTime: clock.now() });
    const b = await sessions.create({ ...alice, authTime: clock.now(), deviceId: 'phone' });
    const c = await sessions.create({ ...alice, subject: 'bob', authTime: clock.now(), deviceId: 'phone' });
    const d = await sessions.create({ ...alice, subject: 'carol', authTime: clock.now(), deviceId: 'desk' });
    assert.equal(await sessions.revoke(a.id, 'admin'), true);
    assert.equal(await sessions.revoke(a.id, 'admin'), false, 'already revoked');
    assert.equal(sessions.lookup(a.cookie).reason, 'session-unknown');
    assert.equal(await sessions.revokeDevice('phone', 'lost'), 2);
    assert.equal(sessions.lookup(b.cookie).reason, 'session-unknown');
    assert.equal(sessions.lookup(c.cookie).reason, 'session-unknown');
    assert.equal(await sessions.revokeUser('dev:carol', 'logout-everywhere'), 1);
    assert.equal(sessions.lookup(d.cookie).reason, 'session-unknown');
    const all = await sessions.list({ includeEnded: true });
    assert.equal(all.length, 4);
    assert.ok(all.every((session) => session.revoked_at !== null));
    assert.ok(!JSON.stringify(all).includes('rt-alice'), 'the refresh token is never listed');
  });

  it('revokes a session whose user the IdP no longer knows at the next refresh', async () => {
    const clock = new ManualClock();
    let answer: RefreshOutcome = { kind: 'updated', groups: ['engineering'] };
    const seen: string[] = [];
    const sessions = await manager(await open(freshSqliteUrl()), clock, {
      refresher: async (_idp, refreshToken) => {
        seen.push(refreshToken);
        return answer;
      },
      refreshIntervalMs: () => 15 * 60_000,
    });
    const { id, cookie } = await sessions.create({ ...alice, authTime: clock.now() });
    clock.advance(16 * 60_000);
    await sessions.refreshNow(id);
    assert.deepEqual(seen, ['rt-alice']);
    assert.deepEqual(sessions.lookup(cookie).identity?.groups, ['engineering'], 'groups kept fresh');
    answer = { kind: 'unavailable' };
    await sessions.refreshNow(id);
    assert.ok(sessions.lookup(cookie).identity, 'an unreachable IdP does not end the session');
    answer = { kind: 'denied' };
    await sessions.refreshNow(id);
    assert.equal(sessions.lookup(cookie).reason, 'session-unknown');
  });
});

describe('refresh with rotating refresh tokens on two replicas', () => {
  it('does not revoke when another replica already spent the refresh token', async () => {
    const clock = new ManualClock();
    const store = await open(freshSqliteUrl());
    const spent = new Set<string>();
    const refresher = async (_idp: string, token: string): Promise<RefreshOutcome> => {
      if (spent.has(token)) {
        await sleep(100);
        return { kind: 'denied' };
      }
      spent.add(token);
      return { kind: 'updated', groups: ['sre'], refreshToken: `${token}+` };
    };
    const one = await manager(store, clock, { refresher });
    const { id, cookie } = await one.create({ ...alice, authTime: clock.now() });
    const two = await manager(store, clock, { refresher });
    const outcomes = await Promise.all([one.refreshNow(id), two.refreshNow(id)]);
    assert.deepEqual(outcomes.map((outcome) => outcome?.kind).sort(), ['denied', 'updated']);
    assert.ok(one.lookup(cookie).identity, 'still live on replica one');
    assert.ok(two.lookup(cookie).identity, 'still live on replica two');
    const row = await store.db
      .selectFrom('sessions')
      .select('revoked_at')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    assert.equal(row.revoked_at, null);
  });
});

describe('session key', () => {
  it('generates a 0600 key on first start and reuses it', () => {
    const dir = tempDir();
    const first = resolveSessionKey(undefined, dir);
    assert.equal(first.key.length, 32);
    assert.equal(statSync(join(dir, 'session.key')).mode & 0o777, 0o600);
    assert.deepEqual(resolveSessionKey(undefined, dir).key, first.key);
  });

  it('refuses a key file readable by others and a key of the wrong size', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'session.key'), randomBytes(32).toString('base64url'), { mode: 0o644 });
    assert.throws(
      () => resolveSessionKey(undefined, dir),
      (error) => isVigilError(error, 'ERR_SESSION_KEY'),
    );
    assert.throws(
      () => resolveSessionKey('c2hvcnQ', dir),
      (error) => isVigilError(error, 'ERR_SESSION_KEY'),
    );
  });
});

describe('revocation across replicas (PostgreSQL)', () => {
  it('shares last-seen between replicas, so a session used on one is not idle on the other', async () => {
    const url = freshPostgresUrl();
    const clock = new ManualClock(Date.now());
    const one = await manager(await open(url), clock);
    const two = await manager(await open(url), clock);
    const { cookie } = await one.create({ ...alice, authTime: clock.now() });
    const deadline = Date.now() + 2000;
    while (!two.lookup(cookie).identity && Date.now() < deadline) await sleep(20);
    // Used only on replica one, at +40 and +80 minutes; replica two is asked at +120.
    // Its own last use was at creation, so without the shared last-seen it would call
    // the session idle (120 min > 1 h).
    for (let step = 0; step < 2; step++) {
      clock.advance(40 * 60_000);
      assert.ok(one.lookup(cookie).identity, `used on replica one, step ${step}`);
      await one.flush();
      await sleep(500);
    }
    clock.advance(40 * 60_000);
    assert.ok(two.lookup(cookie).identity, 'replica two knows of the use on replica one');
    clock.advance(61 * 60_000);
    assert.equal(two.lookup(cookie).reason, 'session-idle');
  });

  it('a revocation on one replica reaches another within 2 s', async () => {
    const url = freshPostgresUrl();
    const one = await manager(await open(url), systemClock);
    const two = await manager(await open(url), systemClock);
    const { id, cookie } = await one.create({ ...alice, authTime: Date.now() });
    const deadline = Date.now() + 2000;
    while (!two.lookup(cookie).identity && Date.now() < deadline) await sleep(20);
    assert.ok(two.lookup(cookie).identity, 'the new session reached replica two');

    const started = Date.now();
    await one.revoke(id, 'admin');
    while (two.lookup(cookie).identity && Date.now() - started < 2000) await sleep(10);
    assert.equal(
      two.lookup(cookie).reason,
      'session-unknown',
      `still live on replica two after ${Date.now() - started} ms`,
    );

    const other = await one.create({ ...alice, subject: 'bob', authTime: Date.now() });
    while (!two.lookup(other.cookie).identity && Date.now() < deadline + 2000) await sleep(20);
    const userStart = Date.now();
    await two.revokeUser('dev:bob', 'logout-everywhere');
    while (one.lookup(other.cookie).identity && Date.now() - userStart < 2000) await sleep(10);
    assert.equal(one.lookup(other.cookie).reason, 'session-unknown');
  });
});

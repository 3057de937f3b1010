// Assertion signing keys shared by replicas through the store: one JWKS for all, one
// first key however many start at once, rotation seen by every replica, sealed at rest.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { isVigilError } from '../../src/errors.ts';
import { Sealer } from '../../src/identity/index.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import {
  type AssertionClaims,
  AssertionKeyRing,
  type AssertionKeyRingOptions,
  AssertionSigner,
  DEFAULT_ASSERTION_KEY_OVERLAP_MS,
  DEFAULT_ASSERTION_KEY_PREPUBLISH_MS,
  DEFAULT_ASSERTION_KEY_ROTATION_MS,
} from '../../src/proxy/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { freshPostgresUrl, freshSqliteUrl, STORE_TARGETS } from '../support/databases.ts';

const ISSUER = 'https://vigil.test';
const PURPOSE = 'assertion signing key';
const claims: AssertionClaims = {
  sub: 'dev:alice',
  email: 'alice@example.com',
  groups: Object.freeze(['engineering']),
  device: undefined,
};

async function store(url: string): Promise<Store> {
  const opened = await openStore(url);
  after(() => opened.close());
  return opened;
}

/** One replica: its store connection, its key ring and its signer. */
async function replica(
  url: string,
  options: Partial<AssertionKeyRingOptions> & { sessionKey: Buffer },
): Promise<{ store: Store; keys: AssertionKeyRing; signer: AssertionSigner }> {
  const opened = await store(url);
  const keys = await AssertionKeyRing.open({
    store: opened,
    sealer: new Sealer(options.sessionKey, PURPOSE),
    ...options,
  });
  after(() => keys.close());
  const signer = new AssertionSigner({
    issuer: ISSUER,
    keys,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return { store: opened, keys, signer };
}

function kids(body: string): string[] {
  return (JSON.parse(body) as JSONWebKeySet).keys.map((key) => String(key.kid));
}

async function verifyWith(jwksBody: string, token: string, clock: ManualClock) {
  const jwks = createLocalJWKSet(JSON.parse(jwksBody) as JSONWebKeySet);
  return jwtVerify(token, jwks, {
    issuer: ISSUER,
    audience: 'wiki',
    algorithms: ['ES256'],
    currentDate: new Date(clock.now()),
  });
}

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `${what} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isVigilError(error), `a VigilError, not ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

describe('assertion keys shared through PostgreSQL', () => {
  it('two replicas publish the same JWKS and verify each other’s assertions', async () => {
    const url = freshPostgresUrl();
    const sessionKey = randomBytes(32);
    const clock = new ManualClock(Date.now());
    const a = await replica(url, { sessionKey, clock });
    const b = await replica(url, { sessionKey, clock });
    assert.equal(a.keys.jwksBody, b.keys.jwksBody);
    assert.equal(kids(a.keys.jwksBody).length, 1);
    assert.equal(a.signer.jwksBody, b.signer.jwksBody, 'the signer serves the ring’s JWKS');

    const fromA = await a.signer.assertionFor('session:1', 'wiki', claims);
    const fromB = await b.signer.assertionFor('session:1', 'wiki', claims);
    assert.equal((await verifyWith(b.signer.jwksBody, fromA, clock)).payload.sub, 'dev:alice');
    assert.equal((await verifyWith(a.signer.jwksBody, fromB, clock)).payload.sub, 'dev:alice');
    assert.equal(decodeProtectedHeader(fromA).kid, decodeProtectedHeader(fromB).kid);
  });

  it('a rotation by one replica reaches the other through NOTIFY; the old key stays published for the overlap', async () => {
    const url = freshPostgresUrl();
    const sessionKey = randomBytes(32);
    const clock = new ManualClock(Date.now());
    // A reload period far beyond the test: only the change feed can tell b.
    const slow = { sessionKey, clock, reloadMs: 3_600_000, overlapMs: 2 * 3_600_000 };
    const a = await replica(url, slow);
    const b = await replica(url, slow);
    const oldKid = a.keys.currentKid;
    const before = await b.signer.assertionFor('session:1', 'wiki', claims);

    await a.signer.rotate();
    const newKid = a.keys.currentKid;
    assert.notEqual(newKid, oldKid);
    await until(() => b.keys.currentKid === newKid, 'b signs with the new key');
    const after = await b.signer.assertionFor('session:1', 'wiki', claims);
    assert.notEqual(after, before, 'the cached assertion of the old key is not served again');
    assert.equal(decodeProtectedHeader(after).kid, newKid);

    for (const side of [a, b]) assert.deepEqual(kids(side.signer.jwksBody), [newKid, oldKid]);
    // Signed by b with the old key before it heard of the rotation: still verifies on a.
    await verifyWith(a.signer.jwksBody, before, clock);
    await verifyWith(a.signer.jwksBody, after, clock);

    // Past the overlap, the old key leaves every replica's JWKS at its next reload.
    clock.advance(2 * 3_600_000 + 1);
    await Promise.all([a.keys.refresh(), b.keys.refresh()]);
    for (const side of [a, b]) assert.deepEqual(kids(side.signer.jwksBody), [newKid]);
  });

  it('replicas starting at once create exactly one first key', async () => {
    const url = freshPostgresUrl();
    const sessionKey = randomBytes(32);
    // Migrated first, so that the replicas race on the key, not on the schema.
    const probe = await store(url);
    const replicas = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const opened = await store(url);
        const keys = await AssertionKeyRing.open({ store: opened, sealer: new Sealer(sessionKey, PURPOSE) });
        after(() => keys.close());
        return keys;
      }),
    );
    const rows = await probe.db.selectFrom('signing_keys').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.generation, 1);
    for (const keys of replicas) assert.equal(keys.currentKid, rows[0]?.kid);
  });

  it('replicas finding the key due at once rotate it once', async () => {
    const url = freshPostgresUrl();
    const sessionKey = randomBytes(32);
    const clock = new ManualClock(Date.now());
    const a = await replica(url, { sessionKey, clock });
    const b = await replica(url, { sessionKey, clock });
    const c = await replica(url, { sessionKey, clock });
    const first = a.keys.currentKid;
    clock.advance(DEFAULT_ASSERTION_KEY_ROTATION_MS);
    await Promise.all([a.keys.refresh(), b.keys.refresh(), c.keys.refresh()]);
    const rows = await a.store.db
      .selectFrom('signing_keys')
      .select(['kid', 'generation', 'state', 'not_after'])
      .orderBy('generation')
      .execute();
    assert.equal(rows.length, 2);
    assert.deepEqual(
      rows.map((row) => [row.generation, row.state]),
      [
        [1, 'retired'],
        [2, 'current'],
      ],
    );
    assert.equal(rows[0]?.not_after, clock.now() + DEFAULT_ASSERTION_KEY_OVERLAP_MS);
    for (const side of [a, b, c]) {
      assert.equal(side.keys.currentKid, rows[1]?.kid);
      assert.deepEqual(kids(side.keys.jwksBody), [rows[1]?.kid, first]);
    }
  });

  it('publishes the next key ahead, so an upstream with a cached JWKS verifies its first assertions', async () => {
    const url = freshPostgresUrl();
    const sessionKey = randomBytes(32);
    const clock = new ManualClock(Date.now());
    const a = await replica(url, { sessionKey, clock });
    const b = await replica(url, { sessionKey, clock });
    const first = a.keys.currentKid;
    clock.advance(DEFAULT_ASSERTION_KEY_ROTATION_MS - DEFAULT_ASSERTION_KEY_PREPUBLISH_MS);
    await a.keys.refresh();
    await b.keys.refresh();
    const next = kids(a.keys.jwksBody)[0] as string;
    assert.notEqual(next, first);
    // An upstream fetches the JWKS now and keeps it: both keys are in it.
    const cached = b.keys.jwksBody;
    assert.deepEqual(kids(cached), [next, first]);
    for (const side of [a, b]) {
      assert.equal(side.keys.currentKid, first, 'the next key does not sign yet');
      const token = await side.signer.assertionFor('session:early', 'wiki', claims);
      assert.equal(decodeProtectedHeader(token).kid, first);
    }
    // Due: both switch (b without a reload: the activation timer, here a refresh) and
    // the upstream's cached JWKS verifies the new key's assertions.
    clock.advance(DEFAULT_ASSERTION_KEY_PREPUBLISH_MS);
    await Promise.all([a.keys.refresh(), b.keys.refresh()]);
    for (const side of [a, b]) {
      assert.equal(side.keys.currentKid, next);
      const token = await side.signer.assertionFor('session:due', 'wiki', claims);
      assert.equal(decodeProtectedHeader(token).kid, next);
      await verifyWith(cached, token, clock);
    }
    const rows = await a.store.db.selectFrom('signing_keys').select(['kid', 'not_after']).execute();
    assert.equal(rows.length, 2, 'one next key, made once');
    assert.equal(
      rows.find((row) => row.kid === first)?.not_after,
      clock.now() + DEFAULT_ASSERTION_KEY_OVERLAP_MS,
      'the old key stays published for the overlap after the new one starts signing',
    );
  });

  it('a store outage after start keeps signing with the keys in memory', async () => {
    const url = freshPostgresUrl();
    const sessionKey = randomBytes(32);
    const clock = new ManualClock(Date.now());
    const a = await replica(url, { sessionKey, clock });
    const jwks = a.signer.jwksBody;
    await a.store.close();
    await assert.rejects(a.keys.refresh());
    clock.advance(DEFAULT_ASSERTION_KEY_ROTATION_MS);
    await assert.rejects(a.keys.refresh(), 'a due rotation fails too');
    assert.equal(a.signer.jwksBody, jwks);
    const token = await a.signer.assertionFor('session:1', 'wiki', claims);
    await verifyWith(jwks, token, clock);
  });

  it('refuses to open when the store cannot be read', async () => {
    const closed = await openStore(freshPostgresUrl());
    await closed.close();
    await rejectsWith(
      AssertionKeyRing.open({ store: closed, sealer: new Sealer(randomBytes(32), PURPOSE) }),
      'ERR_ASSERTION_KEYS_UNAVAILABLE',
      /^cannot load the assertion signing keys from the store: /,
    );
  });
});

for (const target of STORE_TARGETS) {
  describe(`assertion keys at rest on ${target.name}`, () => {
    it('stores the private key sealed, never in clear', async () => {
      const sessionKey = randomBytes(32);
      const { store: opened, keys } = await replica(target.freshUrl(), { sessionKey });
      const row = await opened.db.selectFrom('signing_keys').selectAll().executeTakeFirstOrThrow();
      assert.equal(row.kid, keys.currentKid);
      assert.equal(row.purpose, 'assertion');
      assert.equal(row.algorithm, 'ES256');
      const publicJwk = JSON.parse(row.public_jwk_json) as Record<string, unknown>;
      assert.equal(publicJwk.d, undefined, 'no private member in the public key');
      assert.deepEqual(Object.keys(publicJwk).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
      assert.doesNotMatch(row.private_enc, /"d"|PRIVATE KEY|\{/);
      assert.match(row.private_enc, /^v1\.[A-Za-z0-9_-]+$/);
      // It opens with the session key only, and its scalar does not appear in the row.
      const opened1 = new Sealer(sessionKey, PURPOSE).open(row.private_enc);
      assert.ok(opened1 !== undefined);
      const { d } = JSON.parse(opened1) as { d: string };
      assert.ok(!row.private_enc.includes(d) && !row.public_jwk_json.includes(d));
      assert.equal(new Sealer(randomBytes(32), PURPOSE).open(row.private_enc), undefined);
      assert.equal(new Sealer(sessionKey, 'session cookie').open(row.private_enc), undefined);
      assert.doesNotMatch(keys.jwksBody, new RegExp(d));
    });

    it('refuses to open a key sealed with another session key, naming the setting', async () => {
      const url = target.freshUrl();
      await replica(url, { sessionKey: randomBytes(32) });
      await rejectsWith(
        AssertionKeyRing.open({ store: await store(url), sealer: new Sealer(randomBytes(32), PURPOSE) }),
        'ERR_ASSERTION_KEY_INVALID',
        /^assertion signing key [0-9a-f-]{36} cannot be used: its private key does not decrypt: every replica must use the same session key \(session\.secret_file\)/,
      );
    });

    it('refuses a corrupt row with a clear error, and a running replica keeps its key', async () => {
      const url = target.freshUrl();
      const sessionKey = randomBytes(32);
      const sealer = new Sealer(sessionKey, PURPOSE);
      const clock = new ManualClock(Date.now());
      const a = await replica(url, { sessionKey, clock });
      const oldKid = a.keys.currentKid;
      const jwks = a.keys.jwksBody;
      const oldRow = await a.store.db.selectFrom('signing_keys').selectAll().executeTakeFirstOrThrow();
      const oldD = (JSON.parse(sealer.open(oldRow.private_enc) ?? '{}') as { d: string }).d;
      // A next key made elsewhere and written without a change event, so that only a's
      // reload finds it: the newest row, which a would sign with if it opened.
      const source = await replica(target.freshUrl(), { sessionKey });
      const good = await source.store.db.selectFrom('signing_keys').selectAll().executeTakeFirstOrThrow();
      const newKid = good.kid;
      await a.store.db
        .insertInto('signing_keys')
        .values({ ...good, generation: 2, active_from: clock.now() })
        .execute();
      const cases: [string, object, RegExp][] = [
        ['not sealed', { private_enc: 'v1.garbage' }, /its private key does not decrypt/],
        [
          'a sealed value that is not a key',
          { private_enc: sealer.seal('{"kid":"x"}') },
          /its decrypted private key is malformed/,
        ],
        [
          'a scalar bound to another kid',
          { private_enc: sealer.seal(JSON.stringify({ kid: oldKid, d: oldD })) },
          /its sealed private key belongs to another key/,
        ],
        [
          'another key’s scalar',
          { private_enc: sealer.seal(JSON.stringify({ kid: newKid, d: oldD })) },
          /its private key does not match its public key/,
        ],
        ['a public key that is not JSON', { public_jwk_json: '{' }, /its public key is not JSON/],
        [
          'a private member in the public key',
          { public_jwk_json: JSON.stringify({ ...JSON.parse(good.public_jwk_json), d: oldD }) },
          /its public key is not an ES256 public JWK/,
        ],
      ];
      for (const [name, change, message] of cases) {
        await a.store.db.updateTable('signing_keys').set(change).where('kid', '=', newKid).execute();
        await rejectsWith(a.keys.refresh(), 'ERR_ASSERTION_KEY_INVALID', message);
        assert.equal(a.keys.currentKid, oldKid, `${name}: still the key in memory`);
        assert.equal(a.keys.jwksBody, jwks, `${name}: the JWKS in memory`);
        const token = await a.signer.assertionFor(`session:${name}`, 'wiki', claims);
        assert.equal(decodeProtectedHeader(token).kid, oldKid);
        await verifyWith(jwks, token, clock);
        await rejectsWith(
          AssertionKeyRing.open({ store: await store(url), sealer }),
          'ERR_ASSERTION_KEY_INVALID',
          new RegExp(`^assertion signing key ${newKid} cannot be used: ${message.source}`),
        );
        await a.store.db
          .updateTable('signing_keys')
          .set({ private_enc: good.private_enc, public_jwk_json: good.public_jwk_json })
          .where('kid', '=', newKid)
          .execute();
      }
      // Repaired, the replica moves on at its next reload.
      await a.keys.refresh();
      assert.equal(a.keys.currentKid, newKid);
      assert.deepEqual(kids(a.keys.jwksBody), [newKid, oldKid]);
    });
  });
}

describe('assertion keys on SQLite', () => {
  it('a second connection to the file learns of a rotation on its periodic reload', async () => {
    const url = freshSqliteUrl();
    const sessionKey = randomBytes(32);
    const a = await replica(url, { sessionKey });
    // Its own in-process change feed does not hear a's store: only the reload can tell it.
    const b = await replica(url, { sessionKey, reloadMs: 50 });
    assert.equal(b.keys.jwksBody, a.keys.jwksBody);
    const oldKid = a.keys.currentKid;
    await a.keys.rotate();
    await until(() => b.keys.currentKid === a.keys.currentKid, 'b reloads the new key');
    assert.deepEqual(kids(b.signer.jwksBody), [a.keys.currentKid, oldKid]);
    assert.equal(b.signer.jwksBody, a.signer.jwksBody);
  });

  it('deletes keys a day past their overlap when it rotates', async () => {
    const url = freshSqliteUrl();
    const clock = new ManualClock(Date.now());
    const a = await replica(url, { sessionKey: randomBytes(32), clock });
    const first = a.keys.currentKid;
    await a.keys.rotate();
    clock.advance(DEFAULT_ASSERTION_KEY_OVERLAP_MS + 24 * 3_600_000 + 1);
    await a.keys.rotate();
    const rows = await a.store.db.selectFrom('signing_keys').select(['kid', 'generation']).execute();
    assert.deepEqual(rows.map((row) => row.generation).sort(), [2, 3]);
    assert.ok(!rows.some((row) => row.kid === first));
  });

  it('rejects options that would drop a key before its assertions expire', async () => {
    const opened = await store(freshSqliteUrl());
    const sealer = new Sealer(randomBytes(32), PURPOSE);
    await assert.rejects(
      AssertionKeyRing.open({ store: opened, sealer, reloadMs: 60_000, overlapMs: 90_000 }),
      TypeError,
    );
    await assert.rejects(AssertionKeyRing.open({ store: opened, sealer, reloadMs: 0 }), TypeError);
    await assert.rejects(
      AssertionKeyRing.open({ store: opened, sealer, rotationMs: 1000, reloadMs: 5000 }),
      TypeError,
    );
  });
});

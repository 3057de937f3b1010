import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { isVigilError } from '../../src/errors.ts';
import {
  type ChangeEvent,
  type Database,
  MIGRATION_NAMES,
  openStore,
  type Store,
} from '../../src/store/index.ts';
import { freshPostgresUrl, STORE_TARGETS } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';

const run = promisify(execFile);

async function withStore<T>(url: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(url);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function appliedMigrations(store: Store): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db);
  return rows.rows.map((row) => row.name);
}

for (const target of STORE_TARGETS) {
  describe(`store on ${target.name}`, () => {
    it('migrates an empty database to the latest version', async () => {
      await withStore(target.freshUrl(), async (store) => {
        assert.equal(store.dialect, target.name);
        assert.deepEqual(await appliedMigrations(store), [...MIGRATION_NAMES]);
        for (const table of [
          'users',
          'sessions',
          'devices',
          'posture_reports',
          'audit_events',
          'signing_keys',
        ]) {
          const result = await sql`select count(*) as n from ${sql.table(table)}`.execute(store.db);
          assert.equal(result.rows.length, 1, `${table} exists`);
        }
      });
    });

    it('running migrations twice applies nothing the second time', async () => {
      const url = target.freshUrl();
      await withStore(url, async () => {});
      await withStore(url, async (store) => {
        assert.deepEqual(await store.migrate(), { applied: [] });
        assert.deepEqual(await appliedMigrations(store), [...MIGRATION_NAMES]);
      });
    });

    it('two processes migrating the same empty database at once both succeed', async () => {
      const url = target.freshUrl();
      const child = new URL('../support/migrate-child.ts', import.meta.url).pathname;
      const results = await Promise.all([
        run(process.execPath, [child, url]),
        run(process.execPath, [child, url]),
      ]);
      for (const { stdout } of results) assert.deepEqual(JSON.parse(stdout), { ok: true, sessions: 0 });
      await withStore(url, async (store) =>
        assert.deepEqual(await appliedMigrations(store), [...MIGRATION_NAMES]),
      );
    });

    it('round-trips a session row with times as numbers', async () => {
      await withStore(target.freshUrl(), async (store) => {
        const now = Date.UTC(2026, 10, 25, 8, 0, 0);
        await store.db
          .insertInto('sessions')
          .values({
            id: 's1',
            user_id: 'dev:alice',
            idp: 'dev',
            groups_json: JSON.stringify(['engineering', 'sre']),
            amr_json: '["pwd","mfa"]',
            claims_json: '{}',
            device_id: null,
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + 4 * 3_600_000,
            revoked_at: null,
            revoked_reason: null,
            refresh_token_enc: null,
          })
          .execute();
        const row = await store.db
          .selectFrom('sessions')
          .selectAll()
          .where('id', '=', 's1')
          .executeTakeFirstOrThrow();
        assert.equal(row.expires_at, now + 4 * 3_600_000);
        assert.equal(typeof row.created_at, 'number');
        assert.deepEqual(JSON.parse(row.groups_json), ['engineering', 'sre']);
        const updated = await store.db
          .updateTable('sessions')
          .set({ revoked_at: now + 1, revoked_reason: 'admin' })
          .where('id', '=', 's1')
          .executeTakeFirst();
        assert.equal(updated.numUpdatedRows, 1n);
      });
    });

    it('the change feed delivers to subscribers in the publishing process', async () => {
      await withStore(target.freshUrl(), async (store) => {
        const received: ChangeEvent[] = [];
        store.changes.subscribe('session', (event) => received.push(event));
        store.changes.subscribe('device', () => assert.fail('other channels stay quiet'));
        await store.changes.publish({ channel: 'session', action: 'revoked', id: 's1' });
        assert.equal(received.length, 1);
        assert.equal(received[0]?.id, 's1');
        assert.equal(received[0]?.origin, store.changes.origin);
      });
    });

    it('a subscriber that throws does not keep others from the event', async () => {
      await withStore(target.freshUrl(), async (store) => {
        let delivered = false;
        store.changes.subscribe('revocation', () => {
          throw new Error('broken subscriber');
        });
        store.changes.subscribe('revocation', () => {
          delivered = true;
        });
        await store.changes.publish({ channel: 'revocation', action: 'revoked', id: 'cert-1' });
        assert.ok(delivered);
      });
    });
  });
}

describe('tryWrite', () => {
  for (const target of STORE_TARGETS) {
    it(`writes in one transaction and rolls back on error (${target.name})`, async () => {
      await withStore(target.freshUrl(), async (store) => {
        const insert = (name: string) =>
          sql`insert into kysely_migration (name, timestamp) values (${name}, ${'now'})`;
        const outcome = await store.tryWrite(async (trx) => {
          await insert('try-1').execute(trx);
          return 'done';
        });
        assert.deepEqual(outcome, { written: true, value: 'done' });
        await assert.rejects(
          store.tryWrite(async (trx) => {
            await insert('try-2').execute(trx);
            throw new Error('boom');
          }),
          /boom/,
        );
        const names = await appliedMigrations(store);
        assert.ok(names.includes('try-1'));
        assert.ok(!names.includes('try-2'));
      });
    });
  }

  it('on SQLite, the error that ended a transaction SQLite rolled back itself is the one thrown', async () => {
    await withStore(`sqlite://${join(tempDir(), 'vigil.db')}`, async (store) => {
      await assert.rejects(
        store.db.transaction().execute(async (trx) => {
          await sql`rollback`.execute(trx);
          throw new Error('disk full');
        }),
        /disk full/,
      );
      assert.deepEqual(await store.tryWrite(async () => 'usable'), { written: true, value: 'usable' });
    });
  });

  it('on SQLite, answers written: false at once while another connection holds the write lock, then writes once it is free', async () => {
    const file = join(tempDir(), 'vigil.db');
    await withStore(`sqlite://${file}`, async (store) => {
      const setting = async (name: string, db: Kysely<Database> = store.db) =>
        Object.values((await sql.raw<Record<string, number>>(`pragma ${name}`).execute(db)).rows[0] ?? {})[0];
      const other = new DatabaseSync(file);
      try {
        other.exec('begin immediate');
        let ran = false;
        const outcome = await store.tryWrite(async () => {
          ran = true;
        });
        assert.deepEqual(outcome, { written: false });
        assert.equal(ran, false);
        other.exec('rollback');
        // Inside, the connection neither waits for a lock nor syncs at commit.
        const inside = await store.tryWrite(async (trx) => ({
          busyTimeout: await setting('busy_timeout', trx),
          synchronous: await setting('synchronous', trx),
          autocheckpoint: await setting('wal_autocheckpoint', trx),
        }));
        assert.deepEqual(inside, {
          written: true,
          value: { busyTimeout: 0, synchronous: 1, autocheckpoint: 0 },
        });
      } finally {
        other.close();
      }
      // The connection's own settings are back for every other write.
      assert.equal(await setting('busy_timeout'), 5000);
      assert.equal(await setting('synchronous'), 2, 'FULL');
      assert.equal(await setting('wal_autocheckpoint'), 1000);
    });
  });

  it("on SQLite, restores the connection's own checkpoint setting, and refuses a bad one", async () => {
    const url = `sqlite://${join(tempDir(), 'vigil.db')}`;
    const store = await openStore(url, { walAutocheckpointPages: 128 });
    try {
      const autocheckpoint = async () =>
        Object.values(
          (await sql.raw<Record<string, number>>('pragma wal_autocheckpoint').execute(store.db)).rows[0] ??
            {},
        )[0];
      assert.equal(await autocheckpoint(), 128);
      assert.deepEqual(await store.tryWrite(async () => 'done'), { written: true, value: 'done' });
      assert.equal(await autocheckpoint(), 128, 'not the default 1000');
    } finally {
      await store.close();
    }
    for (const pages of [-1, 1.5, Number.NaN])
      await assert.rejects(
        openStore(url, { walAutocheckpointPages: pages }),
        /walAutocheckpointPages must be a whole number/,
      );
  });
});

describe('store on postgres: change feed across connections', () => {
  it('delivers an event published on one connection to another, once', async () => {
    const url = freshPostgresUrl();
    await withStore(url, async (first) => {
      await withStore(url, async (second) => {
        const seenByFirst: ChangeEvent[] = [];
        first.changes.subscribe('*', (event) => seenByFirst.push(event));
        const received = new Promise<ChangeEvent>((resolve) => second.changes.subscribe('session', resolve));
        await first.changes.publish({
          channel: 'session',
          action: 'revoked',
          id: 'sess-42',
          data: { reason: 'admin' },
        });
        const event = await Promise.race([
          received,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no event within 2 s')), 2000)),
        ]);
        assert.equal(event.id, 'sess-42');
        assert.deepEqual(event.data, { reason: 'admin' });
        assert.equal(event.origin, first.changes.origin);
        // The publisher's own NOTIFY echo is not delivered a second time.
        await first.ping();
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(seenByFirst.length, 1);
      });
    });
  });

  it('ignores a forged or malformed notification on the channel', async () => {
    const url = freshPostgresUrl();
    const schema = new URL(url).searchParams.get('schema');
    await withStore(url, async (store) => {
      const seen: ChangeEvent[] = [];
      store.changes.subscribe('*', (event) => seen.push(event));
      const client = new pg.Client({ connectionString: url.replace(/\?.*$/, '') });
      await client.connect();
      await client.query(`select pg_notify('vigil_changes_${schema}', 'not json')`);
      await client.query(
        `select pg_notify('vigil_changes_${schema}', '{"channel":"root","action":"x","origin":"o","at":1}')`,
      );
      await client.query(
        `select pg_notify('vigil_changes_${schema}', '{"channel":"session","action":"revoked","id":"s9","origin":"other","at":1}')`,
      );
      await client.end();
      const deadline = Date.now() + 2000;
      while (seen.length === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(
        seen.map((event) => event.id),
        ['s9'],
      );
    });
  });

  it('reconnects a killed listener and asks subscribers to resync', async () => {
    const url = freshPostgresUrl();
    await withStore(url, async (store) => {
      const resynced = new Promise<void>((resolve) => store.changes.onResync(resolve));
      const admin = new pg.Client({ connectionString: url.replace(/\?.*$/, '') });
      await admin.connect();
      await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where query like 'listen vigil_changes_%' and pid <> pg_backend_pid()" +
          ' and query like $1',
        [`%${new URL(url).searchParams.get('schema')}%`],
      );
      await admin.end();
      await Promise.race([
        resynced,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no resync within 5 s')), 5000)),
      ]);
      // After the resync the feed works again across connections.
      await withStore(url, async (other) => {
        const received = new Promise<ChangeEvent>((resolve) => store.changes.subscribe('device', resolve));
        await other.changes.publish({ channel: 'device', action: 'revoked', id: 'd1' });
        assert.equal((await received).id, 'd1');
      });
    });
  });

  it('refuses a change event too large for NOTIFY', async () => {
    await withStore(freshPostgresUrl(), async (store) => {
      await assert.rejects(
        store.changes.publish({ channel: 'policy', action: 'updated', data: { blob: 'x'.repeat(9000) } }),
        RangeError,
      );
    });
  });
});

describe('store errors', () => {
  it('a dead database fails with ERR_STORE_UNAVAILABLE and hides the password', async () => {
    await assert.rejects(openStore('postgres://vigil:hunter2@127.0.0.1:1/test'), (error: unknown) => {
      assert.ok(isVigilError(error, 'ERR_STORE_UNAVAILABLE'));
      assert.match(
        error.message,
        /cannot reach the database at postgres:\/\/vigil:\*\*\*@127\.0\.0\.1:1\/test/,
      );
      assert.doesNotMatch(error.message, /hunter2/);
      return true;
    });
  });

  it('an unknown URL scheme fails with ERR_STORE_URL', async () => {
    await assert.rejects(openStore('mysql://127.0.0.1/test'), (error: unknown) =>
      isVigilError(error, 'ERR_STORE_URL'),
    );
  });

  it('a schema name that is not an identifier is refused', async () => {
    await assert.rejects(
      openStore('postgres://postgres@127.0.0.1:5432/test?schema=x;drop'),
      (error: unknown) => isVigilError(error, 'ERR_STORE_URL'),
    );
  });
});

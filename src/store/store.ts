import { isAbsolute, resolve } from 'node:path';
import { Kysely, Migrator, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { VigilError } from '../errors.ts';
import { type ChangeFeed, InProcessChangeFeed, PostgresChangeFeed } from './change-feed.ts';
import { isSqliteBusy } from './errors.ts';
import { LATEST_MIGRATION, migrationProvider } from './migrations.ts';
import { parsePostgresUrl, postgresClientConfig, postgresDialect } from './postgres.ts';
import { BUSY_TIMEOUT_MS, sqliteDialect, WAL_AUTOCHECKPOINT_PAGES } from './sqlite.ts';
import type { Database } from './tables.ts';

export type StoreDialect = 'sqlite' | 'postgres';

export interface Store {
  readonly dialect: StoreDialect;
  readonly db: Kysely<Database>;
  readonly changes: ChangeFeed;
  /**
   * The SQLite database file (absolute path); undefined for `:memory:` and PostgreSQL.
   * Lets a worker thread open a connection of its own (the audit writer does).
   */
  readonly file?: string;
  /**
   * A write that may wait for a better moment (last-seen times), in one transaction.
   * SQLite runs every statement on the calling thread, so there it neither waits for a
   * write lock another connection holds (`{ written: false }`: try again later) nor
   * syncs its commit to disk, nor copies the WAL back at commit: the event loop is held
   * for the statements only. Such a commit survives a crash of the process; a power
   * cut may lose it. PostgreSQL: an ordinary transaction.
   */
  tryWrite<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<TryWriteResult<T>>;
  /** Applies pending migrations; safe to call twice and from two replicas at once. */
  migrate(): Promise<{ applied: string[] }>;
  /** Resolves when the database answers within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export type TryWriteResult<T> = { written: true; value: T } | { written: false };

export interface OpenStoreOptions {
  /** Folder relative sqlite:// paths are resolved against. */
  dataDir?: string;
  /** Apply migrations before returning (the server does; `vigil` tools that only read do not). */
  migrate?: boolean;
  /**
   * SQLite: WAL pages after which a commit on this connection copies them back into the
   * database (SQLite's default, 1000, unless given; the audit writer's thread uses fewer).
   */
  walAutocheckpointPages?: number;
}

const DEFAULT_PING_TIMEOUT_MS = 2000;

/**
 * Opens the store a database URL names:
 * - `sqlite:///abs/path.db`, `sqlite://relative.db` (under the data dir), `sqlite://:memory:`
 * - `postgres://user@host:5432/db[?schema=name]`
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const store = url.startsWith('sqlite://')
    ? openSqlite(url, options)
    : /^postgres(ql)?:\/\//.test(url)
      ? await openPostgres(url)
      : undefined;
  if (!store) {
    throw new VigilError(
      'ERR_STORE_URL',
      `unsupported database URL scheme in "${redactUrl(url)}"; use sqlite:// or postgres://`,
    );
  }
  if (options.migrate !== false) {
    try {
      await store.migrate();
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
  }
  return store;
}

function openSqlite(url: string, options: OpenStoreOptions): Store {
  const rest = url.slice('sqlite://'.length);
  const path = rest === ':memory:' ? rest : isAbsolute(rest) ? rest : resolve(options.dataDir ?? '.', rest);
  if (path === '')
    throw new VigilError(
      'ERR_STORE_URL',
      'sqlite:// URL needs a path, e.g. sqlite:///var/lib/vigil/vigil.db',
    );
  const autocheckpoint = options.walAutocheckpointPages ?? WAL_AUTOCHECKPOINT_PAGES;
  if (!Number.isSafeInteger(autocheckpoint) || autocheckpoint < 0)
    throw new TypeError(`walAutocheckpointPages must be a whole number of pages, not ${autocheckpoint}`);
  const db = new Kysely<Database>({ dialect: sqliteDialect(path, autocheckpoint) });
  const changes = new InProcessChangeFeed();
  return {
    dialect: 'sqlite',
    db,
    changes,
    ...(path === ':memory:' ? {} : { file: path }),
    tryWrite: (work) => sqliteTryWrite(db, autocheckpoint, work),
    migrate: () => runMigrations(db, undefined),
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: async () => {
      await changes.close();
      await db.destroy();
    },
  };
}

/**
 * The connection's settings change for this one transaction; holding the connection
 * meanwhile keeps every other query of this store out of it (Kysely gives SQLite one).
 */
async function sqliteTryWrite<T>(
  db: Kysely<Database>,
  autocheckpoint: number,
  work: (trx: Transaction<Database>) => Promise<T>,
): Promise<TryWriteResult<T>> {
  return db.connection().execute(async (connection) => {
    try {
      await sql`pragma busy_timeout = 0`.execute(connection);
      await sql`pragma synchronous = normal`.execute(connection);
      await sql`pragma wal_autocheckpoint = 0`.execute(connection);
      return { written: true, value: await connection.transaction().execute(work) };
    } catch (error) {
      if (isSqliteBusy(error)) return { written: false };
      throw error;
    } finally {
      await sql.raw(`pragma busy_timeout = ${BUSY_TIMEOUT_MS}`).execute(connection);
      await sql`pragma synchronous = full`.execute(connection);
      await sql.raw(`pragma wal_autocheckpoint = ${autocheckpoint}`).execute(connection);
    }
  });
}

async function openPostgres(url: string): Promise<Store> {
  let target: ReturnType<typeof parsePostgresUrl>;
  try {
    target = parsePostgresUrl(url);
  } catch (error) {
    throw new VigilError(
      'ERR_STORE_URL',
      `invalid PostgreSQL URL "${redactUrl(url)}": ${(error as Error).message}`,
    );
  }
  await ensureSchema(target.connectionString, target.schema, url);
  const { dialect, pool } = postgresDialect(target);
  const db = new Kysely<Database>({ dialect });
  const changes = new PostgresChangeFeed(pool, postgresClientConfig(target), target.schema);
  try {
    await changes.start();
  } catch (error) {
    await db.destroy().catch(() => {});
    throw unavailable(url, error);
  }
  return {
    dialect: 'postgres',
    db,
    changes,
    tryWrite: async (work) => ({ written: true, value: await db.transaction().execute(work) }),
    migrate: () => runMigrations(db, target.schema),
    ping: (timeoutMs = DEFAULT_PING_TIMEOUT_MS) =>
      withTimeout(
        pool.query('select 1').then(() => {}),
        timeoutMs,
      ),
    close: async () => {
      await changes.close();
      await db.destroy();
    },
  };
}

/** Creates the URL's schema; two replicas racing to create it both succeed. */
async function ensureSchema(
  connectionString: string,
  schema: string | undefined,
  url: string,
): Promise<void> {
  if (!schema) return;
  const client = new pg.Client(postgresClientConfig({ connectionString, schema: undefined }));
  try {
    await client.connect();
    await client.query(`create schema if not exists ${schema}`).catch(async (error: unknown) => {
      const exists = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
      if (exists.rowCount === 0) throw error;
    });
  } catch (error) {
    throw unavailable(url, error);
  } finally {
    await client.end().catch(() => {});
  }
}

async function runMigrations(
  db: Kysely<Database>,
  schema: string | undefined,
): Promise<{ applied: string[] }> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    throw new VigilError(
      'ERR_STORE_MIGRATION',
      `database migration ${failed ?? 'setup'} failed: ${(error as Error).message ?? String(error)}`,
      { cause: error },
    );
  }
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

function unavailable(url: string, error: unknown): VigilError {
  return new VigilError(
    'ERR_STORE_UNAVAILABLE',
    `cannot reach the database at ${redactUrl(url)}: ${(error as Error).message ?? String(error)}`,
    { status: 503, publicMessage: 'service unavailable', cause: error },
  );
}

/** Hides the password of a database URL for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolvePromise(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

export { LATEST_MIGRATION };

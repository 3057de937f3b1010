import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
} from 'kysely';
import { isSqliteBusy } from './errors.ts';

/** How long a writer waits for another process holding the SQLite write lock. */
export const BUSY_TIMEOUT_MS = 5000;
/** Pages in the WAL after which a commit copies them back to the database (SQLite's default). */
export const WAL_AUTOCHECKPOINT_PAGES = 1000;
const STATEMENT_CACHE_LIMIT = 500;

/**
 * Kysely's SQLite dialect expects better-sqlite3's statement shape; this adapts Node's
 * built-in `node:sqlite` (no native addon to build) to it, caching prepared statements.
 */
function adapt(database: DatabaseSync) {
  const statements = new Map<string, { statement: StatementSync; reader: boolean }>();
  const prepared = (sql: string) => {
    let entry = statements.get(sql);
    if (!entry) {
      const statement = database.prepare(sql);
      entry = { statement, reader: statement.columns().length > 0 };
      if (statements.size >= STATEMENT_CACHE_LIMIT) statements.clear();
      statements.set(sql, entry);
    }
    return entry;
  };
  const bind = (parameters: readonly unknown[]) =>
    parameters.map((value) => (value === undefined ? null : value)) as SQLInputValue[];
  return {
    close: () => database.close(),
    prepare(sql: string) {
      const { statement, reader } = prepared(sql);
      return {
        reader,
        all: (parameters: readonly unknown[]) => statement.all(...bind(parameters)),
        run: (parameters: readonly unknown[]) => {
          const { changes, lastInsertRowid } = statement.run(...bind(parameters));
          return { changes: Number(changes), lastInsertRowid };
        },
        iterate: (parameters: readonly unknown[]) => statement.iterate(...bind(parameters)),
      };
    },
  };
}

/**
 * Every transaction takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
 * transaction that reads then writes can deadlock against another process doing the
 * same, and fails instead of waiting for busy_timeout.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /**
   * SQLite rolls a transaction back by itself after some errors (a full disk, a lock it
   * could not get mid-statement); the ROLLBACK that follows would then fail and hide the
   * error that ended the transaction.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } catch (error) {
      if (!/no transaction is active/.test((error as Error).message ?? '')) throw error;
    }
  }
}

/**
 * SQLite does run DDL inside transactions. Saying so makes Kysely's migrator run each
 * migration in a (BEGIN IMMEDIATE) transaction, which is what serializes two processes
 * migrating the same file at once.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class NodeSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/**
 * Switches a file to WAL. SQLite answers BUSY to the switch at once, without its busy
 * handler, when another process opens the same new file at that moment (two replicas
 * starting together): retry briefly. Runs once per process, at open.
 */
function enableWal(database: DatabaseSync): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      database.exec('pragma journal_mode = wal');
      return;
    } catch (error) {
      if (!isSqliteBusy(error) || Date.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, 5 + Math.floor(Math.random() * 20));
    }
  }
}

/** Opens (creating if needed) a SQLite file, or `:memory:`, as a Kysely dialect. */
export function sqliteDialect(
  path: string,
  walAutocheckpointPages = WAL_AUTOCHECKPOINT_PAGES,
): SqliteDialect {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const database = new DatabaseSync(path);
  database.exec(`pragma busy_timeout = ${BUSY_TIMEOUT_MS}`);
  if (path !== ':memory:') enableWal(database);
  // FULL: a committed batch (audit events above all) survives a power cut, not only a crash.
  database.exec('pragma synchronous = full');
  database.exec(`pragma wal_autocheckpoint = ${walAutocheckpointPages}`);
  database.exec('pragma foreign_keys = on');
  return new NodeSqliteDialect({ database: adapt(database) as never });
}

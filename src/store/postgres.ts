import { PostgresDialect } from 'kysely';
import pg from 'pg';

const CONNECT_TIMEOUT_MS = 5000;
const STATEMENT_TIMEOUT_MS = 15_000;
const POOL_SIZE = 10;

/** int8 (bigint) columns hold epoch milliseconds, which fit a JS number exactly. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
};

export interface PostgresTarget {
  connectionString: string;
  /** Schema the tables live in (`?schema=` in the URL); public when absent. */
  schema: string | undefined;
}

/** Splits Vigil's own `schema` parameter off a postgres:// URL. */
export function parsePostgresUrl(url: string): PostgresTarget {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new TypeError('schema must be lower-case letters, digits and underscores');
  }
  return { connectionString: parsed.toString(), schema };
}

export function postgresClientConfig(target: PostgresTarget): pg.ClientConfig {
  return {
    connectionString: target.connectionString,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    types,
    ...(target.schema ? { options: `-c search_path=${target.schema}` } : {}),
  };
}

export function postgresDialect(target: PostgresTarget): { dialect: PostgresDialect; pool: pg.Pool } {
  const pool = new pg.Pool({ ...postgresClientConfig(target), max: POOL_SIZE });
  // An idle client that loses its connection emits on the pool; without a listener
  // that would crash the process instead of failing the next query.
  pool.on('error', () => {});
  return { dialect: new PostgresDialect({ pool }), pool };
}

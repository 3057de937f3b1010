import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tempDir } from './tmp.ts';

/** The real PostgreSQL every machine runs; overridable for other set-ups. */
export const POSTGRES_URL = process.env.VIGIL_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface StoreTarget {
  name: 'sqlite' | 'postgres';
  /** A fresh, empty database URL for each call. */
  freshUrl(): string;
}

/**
 * A schema of its own per test, so tests and runs never collide. The schemas are dropped
 * once, after the whole run (test/support/global-setup.ts).
 */
export function freshPostgresUrl(): string {
  const schema = `vigil_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return url.toString();
}

export function freshSqliteUrl(): string {
  return `sqlite://${join(tempDir(), 'vigil.db')}`;
}

/** Both dialects, for suites that must hold for each. */
export const STORE_TARGETS: readonly StoreTarget[] = [
  { name: 'sqlite', freshUrl: freshSqliteUrl },
  { name: 'postgres', freshUrl: freshPostgresUrl },
];

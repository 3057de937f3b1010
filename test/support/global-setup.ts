// Runs once around the whole `node --test` run (see the test script in package.json).
// Test PostgreSQL schemas are dropped here, after every test file has finished, and not
// by each file: a DROP SCHEMA while another file migrates makes PostgreSQL's catalog
// scans (Kysely's introspection) fail with "schema … does not exist".
import pg from 'pg';
import { POSTGRES_URL } from './databases.ts';

export async function globalTeardown(): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ nspname: string }>(
      "select nspname from pg_namespace where nspname like 'vigil\\_t\\_%'",
    );
    for (const { nspname } of rows) await client.query(`drop schema if exists ${nspname} cascade`);
  } catch (error) {
    process.stderr.write(`could not drop the test schemas: ${(error as Error).message}\n`);
  } finally {
    await client.end().catch(() => {});
  }
}

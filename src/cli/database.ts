import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { VigilError } from '../errors.ts';
import { openStore, type Store } from '../store/index.ts';

/** Where the CLI looks for the database when neither --database nor VIGIL_DATABASE_URL is set. */
export const DEFAULT_DATABASE_URL = 'sqlite://./.vigil-data/vigil.db';
export const DATABASE_HELP = `database URL (default: $VIGIL_DATABASE_URL or ${DEFAULT_DATABASE_URL})`;

export interface DatabaseFlag {
  database?: string;
}

/**
 * Opens the database a command names, for the length of `work`. A command that only
 * reads never migrates and never creates a SQLite file (a typo must not leave an empty
 * database behind); one that writes migrates and may create it.
 */
export async function withCliStore<T>(
  options: DatabaseFlag,
  access: 'read' | 'write',
  work: (store: Store) => Promise<T>,
): Promise<T> {
  const write = access === 'write';
  const url = options.database ?? process.env.VIGIL_DATABASE_URL ?? DEFAULT_DATABASE_URL;
  if (!write && url.startsWith('sqlite://') && url !== 'sqlite://:memory:') {
    const path = resolve(url.slice('sqlite://'.length));
    if (!existsSync(path)) {
      throw new VigilError(
        'ERR_STORE_UNAVAILABLE',
        `no database at ${path} (pass --database or set VIGIL_DATABASE_URL)`,
      );
    }
  }
  const store = await openStore(url, { migrate: write });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

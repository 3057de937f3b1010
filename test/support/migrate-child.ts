// Opens a store and migrates it, for tests of two processes migrating at once.
import { openStore } from '../../src/store/index.ts';

const url = process.argv[2];
if (!url) throw new Error('usage: migrate-child.ts URL');
const store = await openStore(url);
const applied = await store.db
  .selectFrom('sessions')
  .select((eb) => eb.fn.countAll().as('n'))
  .executeTakeFirst();
process.stdout.write(JSON.stringify({ ok: true, sessions: Number(applied?.n ?? -1) }));
await store.close();

import { type Kysely, sql, type Transaction } from 'kysely';
import type { AuditEventsTable, Database, Store, StoreDialect } from '../store/index.ts';
import { GENESIS_HASH, linkEvents, type PreparedEvent } from './chain.ts';
import { type CheckpointSigner, signCheckpoint } from './checkpoint.ts';

/** Advisory lock name: one chain writer per schema at a time. */
const LOCK_NAME = ':vigil-audit-chain';

export interface AppendOptions {
  signer?: CheckpointSigner;
  /** Sign a checkpoint once this many events follow the last one. */
  checkpointEvery: number;
  now: number;
}

export interface AppendResult {
  rows: AuditEventsTable[];
  checkpoint?: { seq: number; hash: string };
}

/**
 * Appends one batch as one transaction. The chain tail is read inside the transaction,
 * after the write lock is held (SQLite `BEGIN IMMEDIATE`, PostgreSQL
 * `pg_advisory_xact_lock`), so two writers on one store still make a single chain:
 * each batch links to whatever the other committed last.
 */
export async function appendBatch(
  store: Store,
  events: readonly PreparedEvent[],
  options: AppendOptions,
): Promise<AppendResult> {
  return store.db.transaction().execute(async (trx) => {
    if (store.dialect === 'postgres') {
      await sql`select pg_advisory_xact_lock(hashtext(current_schema() || ${LOCK_NAME}))`.execute(trx);
    }
    const tail = await trx
      .selectFrom('audit_events')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    const rows = linkEvents(
      events,
      tail ? { seq: Number(tail.seq), hash: tail.hash } : { seq: 0, hash: GENESIS_HASH },
    );
    await insertAuditRows(trx, store.dialect, rows);
    const last = rows.at(-1);
    if (!options.signer || !last) return { rows };
    const previous = await trx
      .selectFrom('audit_checkpoints')
      .select('seq')
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (last.seq - Number(previous?.seq ?? 0) < options.checkpointEvery) return { rows };
    const claims = { seq: last.seq, hash: last.hash, created_at: options.now };
    const signature = await signCheckpoint(options.signer, claims);
    await trx
      .insertInto('audit_checkpoints')
      .values({ ...claims, signature })
      .execute();
    return { rows, checkpoint: { seq: last.seq, hash: last.hash } };
  });
}

/**
 * Inserts rows as they are: one `json_each` on SQLite, one `unnest` of column arrays
 * on PostgreSQL (one statement and seven parameters whatever the batch size).
 */
export async function insertAuditRows(
  db: Kysely<Database> | Transaction<Database>,
  dialect: StoreDialect,
  rows: readonly AuditEventsTable[],
): Promise<void> {
  if (rows.length === 0) return;
  if (dialect === 'postgres') {
    const column = <K extends keyof AuditEventsTable>(key: K) => rows.map((row) => row[key]);
    await sql`insert into audit_events (seq, id, time, kind, data_json, prev_hash, hash)
      select * from unnest(${column('seq')}::bigint[], ${column('id')}::text[], ${column('time')}::bigint[],
        ${column('kind')}::text[], ${column('data_json')}::text[], ${column('prev_hash')}::text[], ${column('hash')}::text[])`.execute(
      db,
    );
    return;
  }
  // One JSON parameter that SQLite unpacks with json_each: the statement text never
  // changes (one prepared statement) and binding is one string, not 7 values a row.
  const packed: unknown[] = new Array(rows.length);
  for (let index = 0; index < rows.length; index++) {
    const row = rows[index] as AuditEventsTable;
    packed[index] = [row.seq, row.id, row.time, row.kind, row.data_json, row.prev_hash, row.hash];
  }
  await sql`insert into audit_events (seq, id, time, kind, data_json, prev_hash, hash)
    select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
    from json_each(${JSON.stringify(packed)})`.execute(db);
}

import { type CompiledQuery, type Kysely, sql, type Transaction } from 'kysely';
import type { AuditEventsTable, Database, Store, StoreDialect } from '../store/index.ts';
import { GENESIS_HASH, linkEvents, type PreparedEvent } from './chain.ts';
import { type CheckpointSigner, signCheckpoint } from './checkpoint.ts';
import type { Pace } from './pace.ts';

/**
 * Rows per SQLite INSERT: 7 parameters a row stays far below SQLite's 32766 limit. A
 * multi-row VALUES with bound parameters measured about 1.4 times as fast as unpacking
 * one JSON parameter with json_each, which parses the whole batch a second time.
 */
const SQLITE_ROWS_PER_INSERT = 512;

/**
 * Rows linked or inserted between two calls of a pace: a fraction of a millisecond of
 * work (hashing ≈ 1 µs and inserting ≈ 5 µs a row).
 */
const PACED_CHUNK = 32;

/**
 * Compiled INSERT statements by row count (512 and the powers of two below it, so a
 * handful of statement texts ever exist and stay in the prepared-statement cache).
 * Built once with the `sql` template; each append only swaps the parameters.
 */
const sqliteInserts = new Map<number, CompiledQuery>();

function sqliteInsert(db: Kysely<Database> | Transaction<Database>, rows: number): CompiledQuery {
  let compiled = sqliteInserts.get(rows);
  if (!compiled) {
    const row = sql`(${0}, ${''}, ${0}, ${''}, ${''}, ${''}, ${''})`;
    compiled =
      sql`insert into audit_events (seq, id, time, kind, data_json, prev_hash, hash) values ${sql.join(
        new Array<typeof row>(rows).fill(row),
      )}`.compile(db);
    sqliteInserts.set(rows, compiled);
  }
  return compiled;
}

/** Advisory lock name: one chain writer per schema at a time. */
const LOCK_NAME = ':vigil-audit-chain';

export interface AppendOptions {
  /** What every id of the batch starts with (see batchIdPrefix). */
  batchIdPrefix: string;
  signer?: CheckpointSigner;
  /** Sign a checkpoint once this many events follow the last one. */
  checkpointEvery: number;
  now: number;
  /** Called between chunks of linking and inserting (see pace.ts). */
  pace?: Pace;
}

export interface AppendResult {
  rows: AuditEventsTable[];
  checkpoint?: { seq: number; hash: string };
  /** The batch was already in the chain: `rows` are as stored then, nothing was written. */
  replayed?: true;
}

/**
 * Appends one batch as one transaction. The chain tail is read inside the transaction,
 * after the write lock is held (SQLite `BEGIN IMMEDIATE`, PostgreSQL
 * `pg_advisory_xact_lock`), so two writers on one store still make a single chain:
 * each batch links to whatever the other committed last.
 *
 * Appending is idempotent: a batch whose first id is already stored was committed by an
 * earlier attempt whose answer was lost (a writer thread that died after its commit, a
 * connection lost during COMMIT), and is returned as stored instead of written twice.
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
    const first = events[0];
    const stored =
      first &&
      (await trx.selectFrom('audit_events').select('seq').where('id', '=', first.id).executeTakeFirst());
    if (stored) return committedBatch(trx, Number(stored.seq), first, options.batchIdPrefix);
    const tail = await trx
      .selectFrom('audit_events')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    const rows = await linkInChunks(
      events,
      tail ? { seq: Number(tail.seq), hash: tail.hash } : { seq: 0, hash: GENESIS_HASH },
      options.pace,
    );
    await insertAuditRows(trx, store.dialect, rows, options.pace);
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

/** linkEvents, a chunk at a time with the pace called between chunks. */
async function linkInChunks(
  events: readonly PreparedEvent[],
  after: { seq: number; hash: string },
  pace: Pace | undefined,
): Promise<AuditEventsTable[]> {
  if (pace === undefined) return linkEvents(events, after);
  const rows: AuditEventsTable[] = [];
  let tail = after;
  for (let start = 0; start < events.length; start += PACED_CHUNK) {
    for (const row of linkEvents(events.slice(start, start + PACED_CHUNK), tail)) rows.push(row);
    const last = rows.at(-1) as AuditEventsTable;
    tail = { seq: last.seq, hash: last.hash };
    const pausing = pace();
    if (pausing) await pausing;
  }
  return rows;
}

/** A batch as an earlier attempt committed it: its rows from the first one, and its checkpoint. */
async function committedBatch(
  trx: Transaction<Database>,
  firstSeq: number,
  first: PreparedEvent,
  batchIdPrefix: string,
): Promise<AppendResult> {
  const following = await trx
    .selectFrom('audit_events')
    .selectAll()
    .where('seq', '>=', firstSeq)
    .where('id', 'like', `${batchIdPrefix}%`)
    .orderBy('seq')
    .execute();
  const rows: AuditEventsTable[] = [];
  // One transaction wrote the batch: its rows are consecutive.
  for (const row of following) {
    if (Number(row.seq) !== firstSeq + rows.length || !row.id.startsWith(batchIdPrefix)) break;
    rows.push({ ...row, seq: Number(row.seq), time: Number(row.time) });
  }
  const stored = rows[0];
  // Another writer's event under the same id (same millisecond and random prefix) is a
  // collision to fail on, as the unique index did, not this batch to report as written.
  // Not data_json: prepared again in a new thread, detectors may flag the event otherwise.
  if (stored?.time !== first.time || stored.kind !== first.kind) {
    throw new Error(`audit event id ${first.id} is already stored for another event`);
  }
  const last = rows.at(-1) as AuditEventsTable;
  const checkpoint = await trx
    .selectFrom('audit_checkpoints')
    .select(['seq', 'hash'])
    .where('seq', '=', last.seq)
    .executeTakeFirst();
  return {
    rows,
    replayed: true,
    ...(checkpoint ? { checkpoint: { seq: Number(checkpoint.seq), hash: checkpoint.hash } } : {}),
  };
}

/**
 * Inserts rows as they are: multi-row VALUES on SQLite, one `unnest` of column arrays
 * on PostgreSQL (one statement and seven parameters whatever the batch size). With a
 * pace, SQLite statements are PACED_CHUNK rows at most and the pace is called after each.
 */
export async function insertAuditRows(
  db: Kysely<Database> | Transaction<Database>,
  dialect: StoreDialect,
  rows: readonly AuditEventsTable[],
  pace?: Pace,
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
  let start = 0;
  // Full chunks, then the remainder as power-of-two chunks: at most 10 statement texts.
  const largest = pace === undefined ? SQLITE_ROWS_PER_INSERT : PACED_CHUNK;
  for (let size = largest; start < rows.length; size = Math.max(1, size >> 1)) {
    while (rows.length - start >= size) {
      const parameters: unknown[] = new Array(size * 7);
      for (let index = 0; index < size; index++) {
        const row = rows[start + index] as AuditEventsTable;
        const at = index * 7;
        parameters[at] = row.seq;
        parameters[at + 1] = row.id;
        parameters[at + 2] = row.time;
        parameters[at + 3] = row.kind;
        parameters[at + 4] = row.data_json;
        parameters[at + 5] = row.prev_hash;
        parameters[at + 6] = row.hash;
      }
      await db.executeQuery({ ...sqliteInsert(db, size), parameters });
      start += size;
      const pausing = pace?.();
      if (pausing) await pausing;
    }
  }
}

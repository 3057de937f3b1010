// Audit log append throughput: events/s made durable with the hash chain (canonical JSON,
// SHA-256 link, one transaction per batch, signed checkpoints), on SQLite and PostgreSQL,
// against a plain insert of the same rows (JSON.stringify, no canonical form, no hashing,
// no chain tail, no checkpoints) through the same insert statement and batch size.
// Usage: npm run bench -- audit [EVENTS]. Progress on stderr; the JSON result last on stdout.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from 'jose';
import pg from 'pg';
import { insertAuditRows } from '../src/audit/append.ts';
import { createAuditLog, DEFAULT_BATCH_SIZE, type DecisionEvent } from '../src/audit/index.ts';
import type { AuditEventsTable } from '../src/store/index.ts';
import { openStore, type Store } from '../src/store/index.ts';

const EVENTS = Number(process.argv[2] ?? 200_000);
const ROUNDS = 3;
const POSTGRES_URL =
  process.env.VIGIL_BENCH_POSTGRES_URL ??
  process.env.VIGIL_TEST_POSTGRES_URL ??
  'postgres://postgres@127.0.0.1:5432/test';
const T0 = Date.UTC(2026, 2, 2, 9, 0, 0);

const log = (text: string) => process.stderr.write(`[bench audit] ${text}\n`);

// Deterministic, varied events: 2,000 users, 3,000 devices, 500 routes, 1 in 8 denied.
const events: DecisionEvent[] = Array.from({ length: EVENTS }, (_, index) => {
  const denied = index % 8 === 0;
  return {
    kind: 'decision',
    time: T0 + index,
    requestId: `0193a1b2c3d4e5f6-${index.toString(16).padStart(8, '0')}`,
    user: `oidc:user-${index % 2000}@corp.example`,
    device: `dev-${(index * 7) % 3000}`,
    session: `sess-${(index * 13) % 5000}`,
    sourceIp: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`,
    route: `app${index % 100}-r${index % 5}`,
    method: index % 5 === 0 ? 'POST' : 'GET',
    path: `/api/v1/items/${index % 9973}`,
    host: `app${index % 100}.corp.example`,
    decision: denied ? 'deny' : 'allow',
    rule: denied ? null : 'team-members',
    reasons: denied ? ['group-missing'] : [],
    latencyMs: 0.012 + (index % 10) / 1000,
  };
});

async function chain(store: Store, count: number): Promise<number> {
  const keys = await generateKeyPair('ES256');
  const audit = createAuditLog(store, { signer: { privateKey: keys.privateKey }, queueLimit: 50_000 });
  // A server starts its writer (SQLite: a worker thread) once; its start-up is not per event.
  audit.enqueue({ ...(events[0] as DecisionEvent), requestId: 'warm-up' });
  await audit.flush();
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const event = events[index] as DecisionEvent;
    // A refused event means the queue is full: wait for the writer, as a loaded proxy would shed or deny.
    while (!audit.enqueue(event)) await audit.flush();
  }
  await audit.flush();
  const seconds = (performance.now() - started) / 1000;
  await audit.close();
  return count / seconds;
}

async function plain(store: Store, count: number): Promise<number> {
  const started = performance.now();
  for (let start = 0; start < count; start += DEFAULT_BATCH_SIZE) {
    const rows: AuditEventsTable[] = [];
    for (let index = start; index < Math.min(count, start + DEFAULT_BATCH_SIZE); index++) {
      const { kind, time, ...data } = events[index] as DecisionEvent;
      rows.push({
        seq: index + 1,
        id: `plain-${index}`,
        time,
        kind,
        data_json: JSON.stringify(data),
        prev_hash: '',
        hash: '',
      });
    }
    await store.db.transaction().execute((trx) => insertAuditRows(trx, store.dialect, rows));
  }
  return count / ((performance.now() - started) / 1000);
}

const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-audit-'));
const schemas: string[] = [];
let fresh = 0;
const freshUrl = (dialect: 'sqlite' | 'postgres') => {
  fresh += 1;
  if (dialect === 'sqlite') return `sqlite://${join(dir, `audit-${fresh}.db`)}`;
  const schema = `vigil_bench_${process.pid}_${fresh}`;
  schemas.push(schema);
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return url.toString();
};

async function measure(
  dialect: 'sqlite' | 'postgres',
  kind: 'chain' | 'plain',
  count: number,
): Promise<number> {
  const store = await openStore(freshUrl(dialect));
  try {
    return kind === 'chain' ? await chain(store, count) : await plain(store, count);
  } finally {
    await store.close();
  }
}

const results: Record<string, number> = {};
try {
  log(`${EVENTS} events, batch ${DEFAULT_BATCH_SIZE}, best of ${ROUNDS} rounds`);
  for (const dialect of ['sqlite', 'postgres'] as const) {
    // Warm-up: JIT, statement caches, connection pool.
    await measure(dialect, 'chain', Math.min(EVENTS, 20_000));
    await measure(dialect, 'plain', Math.min(EVENTS, 20_000));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const kind of ['chain', 'plain'] as const) {
        const rate = await measure(dialect, kind, EVENTS);
        const name = `${dialect}-${kind === 'chain' ? 'chain' : 'plain-insert'}`;
        results[name] = Math.max(results[name] ?? 0, rate);
        log(`${name} round ${round}: ${Math.round(rate)} events/s`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  if (schemas.length > 0) {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    for (const schema of schemas) await client.query(`drop schema if exists ${schema} cascade`);
    await client.end();
  }
}

const value = Math.round(results['sqlite-chain'] ?? 0);
const peers = {
  'sqlite-plain-insert': Math.round(results['sqlite-plain-insert'] ?? 0),
  'postgres-chain': Math.round(results['postgres-chain'] ?? 0),
  'postgres-plain-insert': Math.round(results['postgres-plain-insert'] ?? 0),
};
const ratios = Object.fromEntries(
  Object.entries(peers).map(([name, rate]) => [name, rate > 0 ? Number((value / rate).toFixed(3)) : null]),
);
process.stdout.write(`${JSON.stringify({ bench: 'audit', metric: 'events/s', value, peers, ratios })}\n`);

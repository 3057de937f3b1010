import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import {
  type AuditLogStats,
  type AuditSink,
  createAuditLog,
  queryEvents,
  registerAuditMetrics,
  type SinkEntry,
  verifyChain,
} from '../../src/audit/index.ts';
import { isVigilError } from '../../src/errors.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { createMetricsRegistry } from '../../src/telemetry/index.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { admin, decision, everyAppendingThread, T0, withStore } from './helpers.ts';

// Writes are started by size or by flush() only: the timer never fires within a test.
const QUIET = { flushIntervalMs: 60_000, clock: new ManualClock(T0) };

describe('audit log queue', () => {
  it('fail-closed: a full queue makes enqueue return false and counts the refusal', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, { ...QUIET, queueLimit: 3, batchSize: 100 });
      assert.deepEqual(
        [1, 2, 3, 4, 5].map(() => log.enqueue(decision())),
        [true, true, true, false, false],
      );
      assert.equal(log.stats.dropped, 2);
      assert.equal(log.stats.queued, 3);
      await log.flush();
      assert.equal(log.enqueue(decision()), true, 'room again once the batch is written');
      await log.close();
      assert.equal(log.stats.appended, 4);
    });
  });

  it('shed: a full queue drops the event, counts it, and lets the request proceed', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, { ...QUIET, queueLimit: 2, batchSize: 100, onFull: 'shed' });
      assert.deepEqual(
        [1, 2, 3, 4].map(() => log.enqueue(decision())),
        [true, true, true, true],
      );
      assert.equal(log.stats.dropped, 2);
      await log.close();
      assert.equal(log.stats.appended, 2);
    });
  });

  it('a closed log refuses events', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, QUIET);
      await log.close();
      assert.equal(log.enqueue(decision()), false);
    });
  });

  it('flush resolves only once the events are committed', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, { ...QUIET, batchSize: 4 });
      for (let index = 0; index < 10; index++) log.enqueue(decision({ requestId: `r-${index}` }));
      await log.flush();
      const rows = await store.db.selectFrom('audit_events').select('seq').execute();
      assert.equal(rows.length, 10);
      assert.equal(log.stats.lastSeq, 10);
      assert.equal(log.stats.batches, 3);
      await log.close();
    });
  });

  it('a failed write rejects flush with ERR_AUDIT_WRITE_FAILED, keeps the batch, and succeeds once the store is back', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, QUIET);
      log.enqueue(decision());
      await log.flush();
      await sql`alter table audit_events rename to audit_events_away`.execute(store.db);
      log.enqueue(admin());
      log.enqueue(decision());
      await assert.rejects(log.flush(), (error) => isVigilError(error, 'ERR_AUDIT_WRITE_FAILED'));
      assert.equal(log.stats.writeErrors, 1);
      await sql`alter table audit_events_away rename to audit_events`.execute(store.db);
      await log.flush();
      await log.close();
      assert.equal(log.stats.appended, 3);
      const result = await verifyChain(store);
      assert.equal(result.ok, true);
      assert.equal(result.events, 3);
    });
  });

  it('an event that cannot be encoded is recorded as an alert in its place, not dropped', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, QUIET);
      log.enqueue(decision({ latencyMs: Number.NaN, requestId: 'req-bad' }));
      log.enqueue(decision());
      await log.close();
      assert.equal(log.stats.invalid, 1);
      assert.equal(log.stats.appended, 2);
      const { events } = await queryEvents(store, { order: 'asc' });
      const [first] = events;
      assert.equal(first?.kind, 'alert');
      assert.equal(first?.kind === 'alert' ? first.detector : '', 'audit-writer');
      assert.deepEqual(first?.kind === 'alert' ? first.evidence : [], ['req-bad']);
      assert.equal(first?.time, T0);
    });
  });

  it('sinks get each batch after it is durable, with seq, id and hash', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const seen: { entries: readonly SinkEntry[]; stored: number }[] = [];
      const sink: AuditSink = {
        name: 'memory',
        async write(entries) {
          const rows = await store.db.selectFrom('audit_events').select('seq').execute();
          seen.push({ entries, stored: rows.length });
        },
      };
      const failing: AuditSink = {
        name: 'broken',
        async write() {
          throw new Error('down');
        },
      };
      const log = createAuditLog(store, { ...QUIET, batchSize: 2, sinks: [sink, failing] });
      for (let index = 0; index < 3; index++) log.enqueue(decision());
      await log.close();
      assert.deepEqual(
        seen.map((batch) => batch.entries.map((entry) => entry.record.seq)),
        [[1, 2], [3]],
      );
      assert.ok(seen.every((batch) => batch.stored >= (batch.entries.at(-1)?.record.seq ?? 0)));
      assert.match(seen[0]?.entries[0]?.hash ?? '', /^[0-9a-f]{64}$/);
      assert.equal(log.stats.sinkErrors, 2);
    });
  });

  it('refuses nonsense options at construction', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      assert.throws(() => createAuditLog(store, { batchSize: 0 }), TypeError);
      // Event ids number a batch's events in four base-36 digits.
      assert.throws(() => createAuditLog(store, { batchSize: 100_001 }), /batchSize must be at most 100000/);
      assert.throws(() => createAuditLog(store, { onFull: 'drop' as never }), TypeError);
    });
  });
});

describe('audit writer thread', () => {
  it('writes one verifiable chain whichever thread commits: worker, calling thread, in-memory store', async () => {
    const hashes: string[][] = [];
    for (const [url, worker] of everyAppendingThread()) {
      await withStore(url, async (store) => {
        const log = createAuditLog(store, { ...QUIET, batchSize: 3, worker });
        for (let index = 0; index < 7; index++) log.enqueue(decision({ requestId: `same-${index}` }));
        await log.close();
        assert.equal(log.stats.lastSeq, 7);
        assert.equal(log.stats.batches, 3);
        const result = await verifyChain(store);
        assert.equal(result.ok, true);
        assert.equal(result.events, 7);
        const rows = await store.db.selectFrom('audit_events').select('data_json').orderBy('seq').execute();
        hashes.push(rows.map((row) => row.data_json));
      });
    }
    assert.deepEqual(hashes[1], hashes[0]);
    assert.deepEqual(hashes[2], hashes[0]);
  });

  it('keeps the process alive while a batch is in flight, and not once the log is idle', async () => {
    // A library user who never calls close(): flush must still resolve (the thread is
    // referenced while it writes), and the process must then exit on its own.
    const url = freshSqliteUrl();
    await withStore(url, async () => {});
    const script = `
      import { createAuditLog } from ${JSON.stringify(new URL('../../src/audit/index.ts', import.meta.url).href)};
      import { openStore } from ${JSON.stringify(new URL('../../src/store/index.ts', import.meta.url).href)};
      const store = await openStore(${JSON.stringify(url)});
      const log = createAuditLog(store);
      log.enqueue({ kind: 'admin', time: Date.now(), actor: 'test', action: 'test.ran', target: 'x' });
      await log.flush();
      process.stdout.write(String(log.stats.lastSeq));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      timeout: 30_000,
    });
    assert.equal(stdout, '1');
  });
});

describe('audit metrics', () => {
  it('exposes queue depth, appended, dropped and alerts by detector', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    let stats: AuditLogStats = {
      queued: 7,
      accepted: 12,
      dropped: 2,
      invalid: 0,
      appended: 10,
      lastSeq: 10,
      batches: 1,
      writeErrors: 0,
      checkpoints: 0,
      alerts: { 'brute-force': 3 },
      sinkErrors: 0,
      sinkDropped: 0,
    };
    const log = {
      get stats() {
        return stats;
      },
    };
    registerAuditMetrics(registry, log);
    let text = await registry.metrics();
    assert.match(text, /vigil_audit_queue_depth\{service="vigil"\} 7/);
    assert.match(text, /vigil_audit_events_appended_total\{service="vigil"\} 10/);
    assert.match(text, /vigil_audit_events_dropped_total\{service="vigil"\} 2/);
    assert.match(text, /vigil_audit_alerts_total\{detector="brute-force",service="vigil"\} 3/);
    stats = { ...stats, appended: 15, alerts: { 'brute-force': 4 } };
    text = await registry.metrics();
    assert.match(text, /vigil_audit_events_appended_total\{service="vigil"\} 15/);
    assert.match(text, /vigil_audit_alerts_total\{detector="brute-force",service="vigil"\} 4/);
  });
});

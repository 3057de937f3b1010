// The audit writer's queue (decisions as columns, other events as objects, one order) and
// the appender behind it: detection, encoding and chaining where the batch is appended,
// in the writer's thread for a SQLite file and in the calling thread otherwise.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { ChainAppender } from '../../src/audit/appender.ts';
import { eventIdPrefix } from '../../src/audit/chain.ts';
import {
  type AuditEvent,
  type AuditLogOptions,
  bruteForceDetector,
  canonicalJson,
  createAuditLog,
  type DecisionFacts,
  type Detector,
  decisionEvent,
  newDeviceDetector,
  queryEvents,
  verifyChain,
} from '../../src/audit/index.ts';
import { EventQueue, type QueuedEvents } from '../../src/audit/queue.ts';
import { isVigilError } from '../../src/errors.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import type { Store } from '../../src/store/index.ts';
import { freshPostgresUrl, freshSqliteUrl, STORE_TARGETS } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';
import { admin, checkpointKeys, everyAppendingThread, T0, withStore } from './helpers.ts';

// Writes are started by size or by flush() only: the timer never fires within a test.
const QUIET = { flushIntervalMs: 60_000, clock: new ManualClock(T0) };

/** Both places a SQLite file store can prepare batches: the writer's thread and this one. */
const THREADS = [
  { name: 'writer thread', worker: true },
  { name: 'calling thread', worker: false },
] as const;

let counter = 0;

/** Decision facts as an enforcement point reports them; only the required fields by default. */
function facts(overrides: Partial<DecisionFacts> = {}): DecisionFacts {
  counter += 1;
  return {
    requestId: `facts-${counter}`,
    time: T0,
    route: 'wiki',
    method: 'GET',
    path: '/index',
    sourceIp: '198.51.100.7',
    user: 'dev:alice',
    device: 'dev-laptop-1',
    decision: { effect: 'allow', rule: 'staff', reasons: [] },
    ...overrides,
  };
}

/** Facts with every optional field set. */
function fullFacts(overrides: Partial<DecisionFacts> = {}): DecisionFacts {
  return facts({
    host: 'wiki.corp.example',
    session: 'sess-7',
    via: 'forward-auth',
    latencyMs: 0.125,
    groups: ['staff', 'eng'],
    amr: ['pwd', 'otp'],
    authTime: T0 - 60_000,
    decision: { effect: 'deny', rule: 'need-mfa', reasons: ['mfa-required'], mode: 'audit' },
    ...overrides,
  });
}

const denial = (requestId: string, time: number, sourceIp = '203.0.113.9'): DecisionFacts =>
  facts({
    requestId,
    time,
    sourceIp,
    user: null,
    device: null,
    decision: { effect: 'deny', rule: null, reasons: ['user-unauthenticated'] },
  });

/** The data_json the chain must hold for an event: canonical JSON without the column fields. */
function expectedData(event: AuditEvent): string {
  const { kind: _kind, time: _time, ...data } = event;
  return canonicalJson(data);
}

interface Row {
  seq: number;
  time: number;
  kind: string;
  data_json: string;
}

async function rowsOf(store: Store): Promise<Row[]> {
  const rows = await store.db
    .selectFrom('audit_events')
    .select(['seq', 'time', 'kind', 'data_json'])
    .orderBy('seq')
    .execute();
  return rows.map((row) => ({ ...row, seq: Number(row.seq), time: Number(row.time) }));
}

/** What a stored row is about: a decision's request id, an admin event's target, an alert's detector/key. */
function label(row: Row): string {
  const data = JSON.parse(row.data_json) as Record<string, unknown>;
  if (row.kind === 'decision') return String(data['requestId']);
  if (row.kind === 'admin') return String(data['target']);
  return `alert:${String(data['detector'])}/${String(data['key'])}`;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A detector that only counts and records what it is shown (no spec: it runs in the calling thread). */
function countingDetector(name = 'counting'): Detector & { seen: string[] } {
  const seen: string[] = [];
  return {
    name,
    seen,
    observe(event) {
      seen.push(
        event.kind === 'decision'
          ? event.requestId
          : event.kind === 'admin'
            ? `admin:${event.target}`
            : `alert:${event.detector}`,
      );
    },
  };
}

describe('enqueueDecision', () => {
  for (const { name, worker } of THREADS) {
    it(`stores the same data_json as enqueue(decisionEvent(facts)), optional fields present or absent (${name})`, async () => {
      const manyGroups = Array.from({ length: 70 }, (_, index) => `group-${index}`);
      const variants: DecisionFacts[] = [
        fullFacts(),
        facts(),
        // Absent optional fields next to explicitly undefined and null ones.
        facts({ session: null, host: undefined, via: undefined, latencyMs: 0 }),
        facts({ session: undefined, amr: ['hwk'], decision: { effect: 'allow', rule: 'x', reasons: [] } }),
        facts({
          groups: [],
          amr: [],
          authTime: 0,
          decision: { effect: 'allow', rule: 'x', reasons: [], mode: 'enforce' },
        }),
        // More groups than an event keeps: both paths cut the list at the same place.
        fullFacts({ groups: manyGroups, route: null, user: null, device: null }),
      ];
      await withStore(freshSqliteUrl(), async (store) => {
        const log = createAuditLog(store, { ...QUIET, worker });
        for (const variant of variants) {
          assert.equal(log.enqueueDecision(variant), true);
          assert.equal(log.enqueue(decisionEvent(variant)), true);
        }
        await log.close();
        assert.equal(log.stats.invalid, 0);
        assert.equal(log.stats.appended, variants.length * 2);
        const rows = await rowsOf(store);
        assert.equal(rows.length, variants.length * 2);
        variants.forEach((variant, index) => {
          const columns = rows[index * 2] as Row;
          const object = rows[index * 2 + 1] as Row;
          assert.equal(columns.data_json, object.data_json, `variant ${index}: same bytes either way`);
          assert.equal(
            columns.data_json,
            expectedData(decisionEvent(variant)),
            `variant ${index}: canonical`,
          );
          assert.equal(columns.kind, 'decision');
          assert.equal(columns.time, variant.time);
        });
        // The fields themselves, so that both paths dropping one would not pass unnoticed.
        const full = JSON.parse((rows[0] as Row).data_json) as Record<string, unknown>;
        assert.deepEqual(full, {
          requestId: variants[0]?.requestId,
          user: 'dev:alice',
          device: 'dev-laptop-1',
          session: 'sess-7',
          sourceIp: '198.51.100.7',
          route: 'wiki',
          method: 'GET',
          path: '/index',
          host: 'wiki.corp.example',
          decision: 'deny',
          rule: 'need-mfa',
          reasons: ['mfa-required'],
          latencyMs: 0.125,
          mode: 'audit',
          groups: ['staff', 'eng'],
          amr: ['pwd', 'otp'],
          authTime: T0 - 60_000,
          via: 'forward-auth',
        });
        const bare = JSON.parse((rows[2] as Row).data_json) as Record<string, unknown>;
        assert.deepEqual(Object.keys(bare).sort(), [
          'decision',
          'device',
          'latencyMs',
          'method',
          'path',
          'reasons',
          'requestId',
          'route',
          'rule',
          'session',
          'sourceIp',
          'user',
        ]);
        assert.equal(bare['session'], null);
        assert.equal(bare['latencyMs'], 0);
        const capped = JSON.parse((rows[10] as Row).data_json) as { groups: string[] };
        assert.equal(capped.groups.length, 64);
        assert.equal((await verifyChain(store)).ok, true);
      });
    });
  }

  it('stores byte-identical chains data from the writer thread, the calling thread and :memory:', async () => {
    const input = [fullFacts({ requestId: 'same-1' }), facts({ requestId: 'same-2' })];
    const chains: string[][] = [];
    for (const [url, worker] of everyAppendingThread()) {
      await withStore(url, async (store) => {
        const log = createAuditLog(store, { ...QUIET, worker });
        for (const entry of input) log.enqueueDecision(entry);
        log.enqueue(admin({ target: 'same-admin', details: { reason: 'rotation', count: 2 } }));
        await log.close();
        chains.push(
          (await rowsOf(store)).map((row) => `${row.seq} ${row.kind} ${row.time} ${row.data_json}`),
        );
      });
    }
    assert.equal(chains[0]?.length, 3);
    assert.deepEqual(chains[1], chains[0]);
    assert.deepEqual(chains[2], chains[0]);
  });

  for (const { name, worker } of THREADS) {
    it(`keeps enqueue order in seq when admin events and decisions interleave across batches (${name})`, async () => {
      await withStore(freshSqliteUrl(), async (store) => {
        const log = createAuditLog(store, { ...QUIET, batchSize: 3, worker });
        const expected: string[] = [];
        const add = (type: string) => {
          const id = `q-${expected.length}`;
          expected.push(id);
          const accepted =
            type === 'D' ? log.enqueueDecision(facts({ requestId: id })) : log.enqueue(admin({ target: id }));
          assert.equal(accepted, true);
        };
        // Whole batches of one kind, mixed batches, and boundaries on either kind.
        for (const type of 'AAADDDADADDAADA') add(type);
        assert.equal(log.stats.queued, 15);
        await log.flush();
        assert.equal(log.stats.batches, 5);
        assert.equal(log.stats.queued, 0);

        // A batch taken off the queue leaves the rest behind; events enqueued after that
        // still follow it, whichever kind the rest and the newcomers are.
        for (const type of 'DADA') add(type);
        await until(() => log.stats.batches === 6, 'the batch the size trigger starts');
        assert.equal(log.stats.queued, 1);
        for (const type of 'ADDAD') add(type);
        await log.flush();
        for (const type of 'DA') add(type);
        await log.close();

        const rows = await rowsOf(store);
        assert.deepEqual(
          rows.map((row) => row.seq),
          rows.map((_, index) => index + 1),
        );
        assert.deepEqual(rows.map(label), expected);
        assert.deepEqual(
          rows.map((row) => row.kind),
          [...'AAADDDADADDAADADADAADDADDA'].map((type) => (type === 'D' ? 'decision' : 'admin')),
        );
        for (const row of rows) {
          if (row.kind !== 'decision') continue;
          assert.equal(row.data_json, expectedData(decisionEvent(facts({ requestId: label(row) }))));
        }
        assert.equal(log.stats.appended, expected.length);
        assert.equal(log.stats.lastSeq, expected.length);
        const result = await verifyChain(store);
        assert.equal(result.ok, true);
        assert.equal(result.events, expected.length);
      });
    });
  }
});

describe('detection where the batch is appended', () => {
  /** Four denials from one source, an allowed request and an admin event. */
  function enqueueBruteForce(log: ReturnType<typeof createAuditLog>): void {
    log.enqueueDecision(denial('deny-1', T0));
    log.enqueueDecision(denial('deny-2', T0 + 1000));
    log.enqueue(admin({ target: 'between' }));
    log.enqueueDecision(denial('deny-3', T0 + 2000));
    log.enqueueDecision(facts({ requestId: 'allowed', time: T0 + 2500 }));
    log.enqueueDecision(denial('deny-4', T0 + 3000));
  }

  it('a SQLite file runs built-in detectors in the writer thread, with the same chain as the calling thread', async () => {
    const chains: string[][] = [];
    for (const { worker } of THREADS) {
      await withStore(freshSqliteUrl(), async (store) => {
        // This thread's instance counts its calls: from the writer thread only its spec is used.
        const spied = bruteForceDetector({ threshold: 2 });
        const observe = spied.observe.bind(spied);
        let calls = 0;
        spied.observe = (event, report) => {
          calls++;
          observe(event, report);
        };
        assert.ok(spied.spec, 'built-in detectors carry a spec');
        const log = createAuditLog(store, { ...QUIET, worker, detectors: [spied] });
        enqueueBruteForce(log);
        await log.close();
        assert.equal(calls, worker ? 0 : 6, worker ? 'ran in the writer thread' : 'ran in this thread');
        assert.deepEqual(log.stats.alerts, { 'brute-force': 1 });
        assert.equal(log.stats.appended, 7);
        const rows = await rowsOf(store);
        assert.deepEqual(rows.map(label), [
          'deny-1',
          'deny-2',
          'between',
          'deny-3',
          'alert:brute-force/203.0.113.9',
          'allowed',
          'deny-4',
        ]);
        const flagged = await queryEvents(store, { kind: 'decision', risk: 'brute-force', order: 'asc' });
        assert.deepEqual(
          flagged.events.map((event) => (event.kind === 'decision' ? event.requestId : '')),
          ['deny-3', 'deny-4'],
        );
        const [alert] = (await queryEvents(store, { kind: 'alert' })).events;
        assert.equal(alert?.kind, 'alert');
        if (alert?.kind === 'alert') {
          assert.equal(alert.severity, 'high');
          assert.deepEqual(alert.evidence, ['deny-1', 'deny-2', 'deny-3']);
          assert.equal(alert.time, T0 + 2000);
        }
        const deny3 = rows[3] as Row;
        assert.equal(
          deny3.data_json,
          expectedData({ ...decisionEvent(denial('deny-3', T0 + 2000)), risk: ['brute-force'] }),
        );
        assert.equal((await verifyChain(store)).ok, true);
        chains.push(rows.map((row) => `${row.seq} ${row.kind} ${row.time} ${row.data_json}`));
      });
    }
    assert.deepEqual(chains[0], chains[1]);
  });

  it('a detector copied from a built-in with its own observe runs its own code', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      let seen = 0;
      const copied: Detector = {
        ...bruteForceDetector({ threshold: 1 }),
        observe() {
          seen++;
        },
      };
      const log = createAuditLog(store, { ...QUIET, detectors: [copied] });
      log.enqueueDecision(denial('one', T0));
      log.enqueueDecision(denial('two', T0 + 1));
      await log.close();
      assert.equal(seen, 2);
      assert.deepEqual(log.stats.alerts, {});
    });
  });

  it('a detector without a spec still runs on a SQLite file store, next to built-in ones', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const seen: string[] = [];
      const custom: Detector = {
        name: 'watch',
        observe(event, report) {
          seen.push(event.kind === 'decision' ? event.requestId : event.kind);
          if (event.kind === 'decision' && event.requestId === 'flag-me') {
            report.flag('new-device');
            report.alert({ key: 'flag-me', severity: 'low', summary: 'seen', risk: ['new-device'] });
          }
        },
      };
      const log = createAuditLog(store, {
        ...QUIET,
        detectors: [bruteForceDetector({ threshold: 1 }), custom],
      });
      log.enqueueDecision(facts({ requestId: 'first' }));
      log.enqueue(admin({ target: 'middle' }));
      log.enqueueDecision(facts({ requestId: 'flag-me' }));
      log.enqueueDecision(denial('deny-a', T0));
      log.enqueueDecision(denial('deny-b', T0 + 1));
      await log.close();
      assert.deepEqual(seen, ['first', 'admin', 'flag-me', 'deny-a', 'deny-b']);
      assert.deepEqual(log.stats.alerts, { watch: 1, 'brute-force': 1 });
      const rows = await rowsOf(store);
      assert.deepEqual(rows.map(label), [
        'first',
        'middle',
        'flag-me',
        'alert:watch/flag-me',
        'deny-a',
        'deny-b',
        'alert:brute-force/203.0.113.9',
      ]);
      assert.equal(
        (rows[2] as Row).data_json,
        expectedData({ ...decisionEvent(facts({ requestId: 'flag-me' })), risk: ['new-device'] }),
      );
      assert.deepEqual((JSON.parse((rows[5] as Row).data_json) as { risk?: string[] }).risk, ['brute-force']);
      assert.equal((await verifyChain(store)).ok, true);
    });
  });
});

describe('events the writer cannot take as they are', () => {
  for (const { name, worker } of THREADS) {
    it(`an admin event holding a function becomes an audit-writer alert in its place; the batch is stored (${name})`, async () => {
      await withStore(freshSqliteUrl(), async (store) => {
        const log = createAuditLog(store, {
          ...QUIET,
          worker,
          detectors: [bruteForceDetector({ threshold: 1 })],
        });
        log.enqueueDecision(denial('before', T0));
        log.enqueue(
          admin({ requestId: 'admin-fn', target: 'bad', time: T0 + 5, details: { callback: () => 'no' } }),
        );
        log.enqueue(admin({ target: 'good', details: { nested: { ok: true } } }));
        log.enqueueDecision(denial('after', T0 + 10));
        await log.flush();
        assert.equal(log.stats.invalid, 1);
        assert.deepEqual(log.stats.alerts, { 'audit-writer': 1, 'brute-force': 1 });
        assert.equal(log.stats.appended, 5);
        assert.equal(log.stats.writeErrors, 0);
        const rows = await rowsOf(store);
        assert.deepEqual(rows.map(label), [
          'before',
          'alert:audit-writer/unencodable-event',
          'good',
          'after',
          'alert:brute-force/203.0.113.9',
        ]);
        const marker = rows[1] as Row;
        assert.equal(marker.kind, 'alert');
        assert.equal(marker.time, T0 + 5);
        const alert = JSON.parse(marker.data_json) as Record<string, unknown>;
        assert.deepEqual(alert['evidence'], ['admin-fn']);
        assert.equal(alert['severity'], 'medium');
        assert.match(String(alert['summary']), /^a admin event could not be encoded: /);
        assert.ok(!marker.data_json.includes('callback'), 'nothing of the bad event but what is safe to say');
        // The other events went through detection and encoding as usual.
        assert.equal((rows[0] as Row).data_json, expectedData(decisionEvent(denial('before', T0))));
        assert.equal(
          (rows[3] as Row).data_json,
          expectedData({ ...decisionEvent(denial('after', T0 + 10)), risk: ['brute-force'] }),
        );
        assert.equal(
          (rows[2] as Row).data_json,
          expectedData(admin({ target: 'good', details: { nested: { ok: true } } })),
        );

        // The writer goes on as usual afterwards.
        log.enqueueDecision(facts({ requestId: 'next' }));
        await log.close();
        assert.equal(log.stats.lastSeq, 6);
        const result = await verifyChain(store);
        assert.equal(result.ok, true);
        assert.equal(result.events, 6);
      });
    });
  }
});

describe('what crosses to the writer thread', () => {
  it('new-device seeded from a one-shot iterator works in the writer thread', async () => {
    function* known() {
      yield ['dev:alice', 'laptop'] as const;
    }
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, { ...QUIET, detectors: [newDeviceDetector({ known: known() })] });
      log.enqueueDecision(facts({ requestId: 'new-phone', user: 'dev:alice', device: 'phone' }));
      await log.flush();
      assert.equal(log.stats.writeErrors, 0);
      assert.deepEqual(log.stats.alerts, { 'new-device': 1 });
      await log.close();
    });
  });

  for (const { name, worker } of THREADS) {
    it(`an unencodable event without a usable time is stamped with the log's clock (${name})`, async () => {
      await withStore(freshSqliteUrl(), async (store) => {
        const log = createAuditLog(store, { ...QUIET, worker });
        log.enqueue(admin({ time: -1, details: { value: Number.NaN } }));
        await log.close();
        assert.equal(log.stats.invalid, 1);
        const rows = await rowsOf(store);
        assert.equal((rows[0] as Row).kind, 'alert');
        assert.equal((rows[0] as Row).time, T0);
      });
    });
  }
});

describe('retried writes', () => {
  const renameAway = (store: Store) =>
    sql`alter table audit_events rename to audit_events_away`.execute(store.db);
  const renameBack = (store: Store) =>
    sql`alter table audit_events_away rename to audit_events`.execute(store.db);

  it('a detector sees each event once although the first write of its batch failed (calling thread)', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const counting = countingDetector();
      const alerting: Detector = {
        name: 'alerting',
        observe(event, report) {
          if (event.kind === 'decision' && event.requestId === 'r-2')
            report.alert({ key: 'r-2', severity: 'low', summary: 'once', risk: [] });
        },
      };
      const log = createAuditLog(store, { ...QUIET, detectors: [counting, alerting] });
      log.enqueueDecision(facts({ requestId: 'r-0' }));
      await log.flush();
      await renameAway(store);
      log.enqueueDecision(facts({ requestId: 'r-1' }));
      log.enqueue(admin({ target: 'a-1' }));
      log.enqueueDecision(facts({ requestId: 'r-2' }));
      await assert.rejects(log.flush(), (error) => isVigilError(error, 'ERR_AUDIT_WRITE_FAILED'));
      await assert.rejects(log.flush(), (error) => isVigilError(error, 'ERR_AUDIT_WRITE_FAILED'));
      assert.equal(log.stats.writeErrors, 2);
      assert.deepEqual(counting.seen, ['r-0', 'r-1', 'admin:a-1', 'r-2']);
      await renameBack(store);
      await log.flush();
      await log.close();
      assert.deepEqual(
        counting.seen,
        ['r-0', 'r-1', 'admin:a-1', 'r-2'],
        'the retry reused the prepared batch',
      );
      assert.deepEqual(log.stats.alerts, { alerting: 1 });
      assert.equal(log.stats.appended, 5);
      const rows = await rowsOf(store);
      assert.deepEqual(rows.map(label), ['r-0', 'r-1', 'a-1', 'r-2', 'alert:alerting/r-2']);
      const result = await verifyChain(store);
      assert.equal(result.ok, true);
      assert.equal(result.events, 5);
    });
  });

  it('the writer thread does not run its detectors again on a retried batch', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      // Every denial past the second alerts (no deduplication across a second): running
      // the batch through again would flag and alert on each retried denial.
      const log = createAuditLog(store, {
        ...QUIET,
        alertDedupeMs: 1,
        detectors: [bruteForceDetector({ threshold: 2, windowMs: 60_000 })],
      });
      // Starts the writer thread, so that the rename below is what its connection meets.
      log.enqueue(admin({ target: 'start' }));
      await log.flush();
      await renameAway(store);
      log.enqueueDecision(denial('d-1', T0));
      log.enqueueDecision(denial('d-2', T0 + 1000));
      log.enqueueDecision(denial('d-3', T0 + 2000));
      await assert.rejects(log.flush(), (error) => isVigilError(error, 'ERR_AUDIT_WRITE_FAILED'));
      await assert.rejects(log.flush(), (error) => isVigilError(error, 'ERR_AUDIT_WRITE_FAILED'));
      await renameBack(store);
      await log.flush();
      await log.close();
      assert.deepEqual(log.stats.alerts, { 'brute-force': 1 });
      assert.equal(log.stats.appended, 5);
      const rows = await rowsOf(store);
      assert.deepEqual(rows.map(label), ['start', 'd-1', 'd-2', 'd-3', 'alert:brute-force/203.0.113.9']);
      const flagged = await queryEvents(store, { risk: 'brute-force', kind: 'decision' });
      assert.deepEqual(
        flagged.events.map((event) => (event.kind === 'decision' ? event.requestId : '')),
        ['d-3'],
      );
      const result = await verifyChain(store);
      assert.equal(result.ok, true);
      assert.equal(result.events, 5);
    });
  });
});

describe('a batch whose answer was lost', () => {
  /** Three denials from one source and an admin event, as one queued batch. */
  const lostBatch = () => {
    const queue = new EventQueue(16);
    queue.pushDecision(denial('lost-1', T0));
    queue.pushDecision(denial('lost-2', T0 + 1000));
    queue.push(admin({ target: 'lost-admin' }));
    queue.pushDecision(denial('lost-3', T0 + 2000));
    return queue.take() as QueuedEvents;
  };
  const oneAdminEvent = (target: string) => {
    const queue = new EventQueue(16);
    queue.push(admin({ target }));
    return queue.take() as QueuedEvents;
  };
  /** Two denials from the source of lostBatch, so that its first event is flagged. */
  const primingBatch = () => {
    const queue = new EventQueue(16);
    queue.pushDecision(denial('prime-1', T0 - 2000));
    queue.pushDecision(denial('prime-2', T0 - 1000));
    return queue.take() as QueuedEvents;
  };

  for (const target of STORE_TARGETS) {
    it(`is found in the chain when a new appender writes it again, not appended twice (${target.name})`, async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        const idPrefix = eventIdPrefix(T0);
        const request = (id: number, queued: QueuedEvents) => ({
          id,
          queued,
          checkpointEvery: 3,
          now: T0 + 5000,
          entries: true,
        });
        const options = { signer: keys, dedupeMs: undefined, idPrefix };
        const first = new ChainAppender(store, {
          ...options,
          detectors: [bruteForceDetector({ threshold: 2, windowMs: 60_000 })],
        });
        await first.append(request(1, primingBatch()));
        const committed = await first.append(request(2, lostBatch()));
        assert.deepEqual(committed.alerts, { 'brute-force': 1 });
        assert.ok(committed.checkpoint, 'the lost batch signed a checkpoint');
        const flagged = await queryEvents(store, { risk: 'brute-force', kind: 'decision' });
        assert.ok(
          flagged.events.some((event) => event.kind === 'decision' && event.requestId === 'lost-1'),
          'the first event of the lost batch was flagged by the detector',
        );
        // What a restarted writer thread does with the batch it was not told about: prepare
        // it again, with detectors that saw nothing yet (so its events differ), and write it.
        const restarted = new ChainAppender(store, { ...options, detectors: [] });
        const replayed = await restarted.append(request(2, lostBatch()));
        assert.deepEqual(replayed, committed);
        const stored = (await rowsOf(store)).length;
        assert.equal(stored, committed.lastSeq);
        const result = await verifyChain(store, { publicKey: keys.publicKey });
        assert.equal(result.ok, true, result.problem?.message);
        assert.equal(result.events, stored);
        // The next batch links after it as usual.
        const next = await restarted.append(request(3, oneAdminEvent('after')));
        assert.deepEqual([next.firstSeq, next.lastSeq], [stored + 1, stored + 1]);
      });
    });
  }

  it('an id already stored for another event fails the batch instead of passing for it', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const idPrefix = eventIdPrefix(T0);
      const request = (queued: QueuedEvents) => ({
        id: 1,
        queued,
        checkpointEvery: 1000,
        now: T0,
        entries: false,
      });
      const options = { signer: undefined, detectors: [], dedupeMs: undefined, idPrefix };
      await new ChainAppender(store, options).append(request(oneAdminEvent('one writer')));
      // Another writer that drew the same prefix (same millisecond, same random part).
      await assert.rejects(
        new ChainAppender(store, options).append(request(lostBatch())),
        /already stored for another event/,
      );
      assert.deepEqual((await rowsOf(store)).map(label), ['one writer']);
    });
  });

  it('the writer thread runs at a lower priority than the event loop (Linux nice 10)', async () => {
    const file = join(tempDir(), 'vigil.db');
    await withStore(`sqlite://${file}`, async (store) => {
      const log = createAuditLog(store, QUIET);
      log.enqueue(admin({ target: 'n-1' }));
      await log.flush();
      // /proc/self/task/<tid>/stat: field 19 is the nice value; the writer is a worker thread.
      const niceOf = (tid: string) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      };
      const threads = readdirSync('/proc/self/task').map((tid) => ({
        name: readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim(),
        nice: niceOf(tid),
      }));
      const writers = threads.filter((thread) => thread.name === 'WorkerThread');
      assert.ok(writers.length >= 1, JSON.stringify(threads));
      assert.ok(
        writers.some((thread) => thread.nice === 10),
        JSON.stringify(writers),
      );
      assert.equal(
        threads.find((thread) => thread.name === 'MainThread')?.nice ?? niceOf(String(process.pid)),
        0,
      );
      await log.close();
    });
  });

  it('a writer thread that could not open the file ends, and the retry starts one that can', async () => {
    const file = join(tempDir(), 'vigil.db');
    await withStore(`sqlite://${file}`, async (store) => {
      const log = createAuditLog(store, QUIET);
      // The writer thread opens the file on its first batch: a folder stands in its way.
      renameSync(file, `${file}.aside`);
      mkdirSync(file);
      log.enqueue(admin({ target: 'a-1' }));
      await assert.rejects(log.flush(), (error) => isVigilError(error, 'ERR_AUDIT_WRITE_FAILED'));
      rmdirSync(file);
      renameSync(`${file}.aside`, file);
      await log.flush();
      await log.close();
      assert.deepEqual((await rowsOf(store)).map(label), ['a-1']);
    });
  });
});

describe('enqueueDecision on PostgreSQL', () => {
  it('writes a verifiable chain, with the same data as a SQLite file', async () => {
    const options: AuditLogOptions = {
      ...QUIET,
      batchSize: 3,
      detectors: [bruteForceDetector({ threshold: 2 })],
    };
    const enqueueAll = (log: ReturnType<typeof createAuditLog>) => {
      log.enqueueDecision(fullFacts({ requestId: 'pg-full' }));
      log.enqueueDecision(denial('pg-d1', T0));
      log.enqueue(admin({ target: 'pg-admin', details: { why: 'test' } }));
      log.enqueueDecision(denial('pg-d2', T0 + 1000));
      log.enqueueDecision(denial('pg-d3', T0 + 2000));
      log.enqueueDecision(facts({ requestId: 'pg-bare' }));
      log.enqueue(decisionEvent(facts({ requestId: 'pg-object' })));
    };
    const chains: string[][] = [];
    for (const url of [freshPostgresUrl(), freshSqliteUrl()]) {
      await withStore(url, async (store) => {
        const log = createAuditLog(store, options);
        enqueueAll(log);
        await log.close();
        assert.deepEqual(log.stats.alerts, { 'brute-force': 1 });
        assert.equal(log.stats.batches, 3);
        assert.equal(log.stats.lastSeq, 8);
        const result = await verifyChain(store);
        assert.equal(result.ok, true, result.problem?.message);
        assert.equal(result.events, 8);
        const rows = await rowsOf(store);
        assert.deepEqual(rows.map(label), [
          'pg-full',
          'pg-d1',
          'pg-admin',
          'pg-d2',
          'pg-d3',
          'alert:brute-force/203.0.113.9',
          'pg-bare',
          'pg-object',
        ]);
        assert.equal(
          (rows[0] as Row).data_json,
          expectedData(decisionEvent(fullFacts({ requestId: 'pg-full' }))),
        );
        chains.push(rows.map((row) => `${row.seq} ${row.kind} ${row.time} ${row.data_json}`));
      });
    }
    assert.equal(chains[0]?.[0]?.startsWith('1 decision'), true);
    assert.deepEqual(chains[0], chains[1]);
  });
});

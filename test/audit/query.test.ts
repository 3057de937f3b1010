import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  auditApiRoutes,
  auditEventSchema,
  createAuditLog,
  parseAuditQuery,
  queryEvents,
  tokenReplayDetector,
} from '../../src/audit/index.ts';
import { isVigilError } from '../../src/errors.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import type { ApiRequest } from '../../src/internal/http.ts';
import type { Store } from '../../src/store/index.ts';
import { STORE_TARGETS } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';
import { admin, decision, T0, withStore } from './helpers.ts';

const run = promisify(execFile);
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const HOUR = 3_600_000;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** 10 events across two days; seq order = list order. */
async function seed(store: Store): Promise<void> {
  const log = createAuditLog(store, { clock: new ManualClock(T0), detectors: [tokenReplayDetector()] });
  const events = [
    decision({ time: T0 - 30 * HOUR, user: 'dev:bob', route: 'wiki' }),
    decision({ time: T0 - 2 * HOUR, user: 'dev:alice', route: 'wiki' }),
    decision({
      time: T0 - HOUR,
      user: 'dev:alice',
      route: 'admin',
      decision: 'deny',
      reasons: ['group-missing'],
    }),
    decision({
      time: T0 - HOUR + 1,
      user: 'dev:bob',
      device: 'dev-phone',
      route: 'git',
      session: 'sess-bob',
    }),
    decision({
      time: T0 - HOUR + 5 * 60_000,
      user: 'dev:bob',
      device: 'dev-phone',
      route: 'git',
      decision: 'deny',
      reasons: ['device-posture-failed', 'mfa-required'],
      session: 'sess-bob',
      sourceIp: '192.0.2.99',
    }),
    admin({ time: T0 - 10 * 60_000, action: 'device.enrolled', target: 'dev-phone' }),
  ];
  for (const event of events) log.enqueue(event);
  await log.close();
}

for (const target of STORE_TARGETS) {
  describe(`audit queries on ${target.name}`, () => {
    it('filters by user, device, route, decision, reason, risk, kind and time', async () => {
      await withStore(target.freshUrl(), async (store) => {
        await seed(store);
        const seqs = async (query: Parameters<typeof queryEvents>[1]) =>
          (await queryEvents(store, { order: 'asc', ...query })).events.map((event) => event.seq);
        assert.deepEqual(await seqs({}), [1, 2, 3, 4, 5, 6, 7]);
        assert.deepEqual(await seqs({ user: 'dev:bob' }), [1, 4, 5, 6]);
        assert.deepEqual(await seqs({ user: 'dev:bob', kind: 'decision' }), [1, 4, 5]);
        assert.deepEqual(await seqs({ device: 'dev-phone' }), [4, 5]);
        assert.deepEqual(await seqs({ route: 'wiki' }), [1, 2]);
        assert.deepEqual(await seqs({ decision: 'deny' }), [3, 5]);
        assert.deepEqual(await seqs({ reason: 'device-posture-failed' }), [5]);
        assert.deepEqual(await seqs({ reason: 'posture' }), []);
        assert.deepEqual(await seqs({ risk: 'token-replay' }), [5, 6]);
        assert.deepEqual(await seqs({ risk: true, kind: 'decision' }), [5]);
        assert.deepEqual(await seqs({ kind: 'admin' }), [7]);
        assert.deepEqual(await seqs({ since: T0 - 24 * HOUR }), [2, 3, 4, 5, 6, 7]);
        assert.deepEqual(await seqs({ since: T0 - 24 * HOUR, until: T0 - HOUR }), [2]);
        assert.deepEqual(await seqs({ sourceIp: '192.0.2.99', kind: 'decision' }), [5]);
      });
    });

    it('stored events read back match the event schemas', async () => {
      await withStore(target.freshUrl(), async (store) => {
        await seed(store);
        const { events } = await queryEvents(store, { order: 'asc' });
        assert.equal(events.length, 7);
        for (const { seq, id, ...event } of events) {
          assert.ok(seq > 0 && id.length > 0);
          const parsed = auditEventSchema.safeParse(event);
          assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
        }
      });
    });

    it('pages newest first with a cursor', async () => {
      await withStore(target.freshUrl(), async (store) => {
        await seed(store);
        const first = await queryEvents(store, { limit: 3 });
        assert.deepEqual(
          first.events.map((event) => event.seq),
          [7, 6, 5],
        );
        assert.equal(first.next, 5);
        const second = await queryEvents(store, { limit: 3, beforeSeq: first.next });
        assert.deepEqual(
          second.events.map((event) => event.seq),
          [4, 3, 2],
        );
        const last = await queryEvents(store, { limit: 3, beforeSeq: second.next });
        assert.deepEqual(
          last.events.map((event) => event.seq),
          [1],
        );
        assert.equal(last.next, undefined);
      });
    });

    it('GET /api/v1/audit/events answers filtered events and 400 for bad filters', async () => {
      await withStore(target.freshUrl(), async (store) => {
        await seed(store);
        const [route] = auditApiRoutes({ store }, { clock: new ManualClock(T0) });
        assert.ok(route);
        assert.equal(route.path, '/api/v1/audit/events');
        const request = (query: string): ApiRequest => ({
          method: 'GET',
          path: route.path,
          params: {},
          query: new URLSearchParams(query),
          headers: {},
          json: async () => undefined,
          principal: 'admin-token:test',
        });
        const ok = await route.handler(request('since=24h&risk=any&limit=10'));
        assert.equal(ok.status, 200);
        const body = ok.body as { events: { seq: number }[] };
        assert.deepEqual(
          body.events.map((event) => event.seq),
          [6, 5],
        );
        assert.equal((await route.handler(request('decision=maybe'))).status, 400);
        assert.equal((await route.handler(request('risk=sneaky'))).status, 400);
        assert.equal((await route.handler(request('limit=100000'))).status, 400);
        assert.equal((await route.handler(request('sort=seq'))).status, 400);
      });
    });

    it('vigil audit query prints a table, --json and --jsonl; export writes JSONL', async () => {
      const url = target.freshUrl();
      await withStore(url, seed);
      const table = await cli([
        'audit',
        'query',
        '--database',
        url,
        '--user',
        'dev:bob',
        '--kind',
        'decision',
      ]);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trim().split('\n');
      assert.match(lines[0] ?? '', /^SEQ\s+TIME\s+KIND\s+WHO\s+WHAT\s+OUTCOME\s+WHY\s+RISK$/);
      assert.equal(lines.length, 4);
      assert.match(lines[1] ?? '', /^5 .*deny .*device-posture-failed mfa-required\s+token-replay$/);

      const json = await cli(['audit', 'query', '--database', url, '--risk', '--json']);
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual(
        (JSON.parse(json.stdout) as { seq: number }[]).map((event) => event.seq),
        [6, 5],
      );
      const jsonl = await cli(['audit', 'query', '--database', url, '--decision', 'deny', '--jsonl']);
      assert.deepEqual(
        jsonl.stdout
          .trim()
          .split('\n')
          .map((line) => (JSON.parse(line) as { seq: number }).seq),
        [5, 3],
      );

      const out = join(tempDir(), 'audit.jsonl');
      const exported = await cli(['audit', 'export', '--database', url, '--out', out]);
      assert.equal(exported.code, 0, exported.stderr);
      const rows = readFileSync(out, 'utf8').trim().split('\n');
      assert.deepEqual(
        rows.map((line) => (JSON.parse(line) as { seq: number }).seq),
        [1, 2, 3, 4, 5, 6, 7],
      );
      assert.equal(statSync(out).mode & 0o777, 0o600);

      const usage = await cli(['audit', 'query', '--database', url, '--decision', 'maybe']);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--decision: must be allow or deny/);
    });
  });
}

describe('vigil audit without a database', () => {
  it('fails naming the missing SQLite file instead of creating an empty one', async () => {
    const path = join(tempDir(), 'missing', 'vigil.db');
    const result = await cli(['audit', 'query', '--database', `sqlite://${path}`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no database at .*missing\/vigil\.db/);
    assert.equal(existsSync(path), false);
  });
});

describe('audit query parsing', () => {
  it('reads since as a duration back from now, an ISO time or epoch milliseconds', () => {
    assert.equal(parseAuditQuery({ since: '24h' }, T0).since, T0 - 24 * HOUR);
    assert.equal(parseAuditQuery({ since: '2026-01-05T00:00:00Z' }, T0).since, Date.UTC(2026, 0, 5));
    assert.equal(parseAuditQuery({ until: String(T0) }, T0).until, T0);
    assert.equal(parseAuditQuery({ risk: '' }, T0).risk, true);
    assert.equal(parseAuditQuery({ risk: 'after-hours' }, T0).risk, 'after-hours');
  });

  it('names the field of a malformed filter', () => {
    assert.throws(
      () => parseAuditQuery({ since: 'yesterday' }, T0),
      (error) => isVigilError(error, 'ERR_AUDIT_QUERY_INVALID') && /^since:/.test(error.message),
    );
    assert.throws(() => parseAuditQuery({ kind: 'login' }, T0), /kind: must be one of/);
    assert.throws(() => parseAuditQuery({ limit: '-1' }, T0), /limit/);
  });
});

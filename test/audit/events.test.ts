import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuditLog, decisionEvent, decisionEventSchema, queryEvents } from '../../src/audit/index.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import type { ProxyDecisionRecord } from '../../src/proxy/index.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { T0, withStore } from './helpers.ts';

const proxied: ProxyDecisionRecord = {
  requestId: 'req-77',
  time: T0,
  route: 'wiki',
  host: 'wiki.corp.example',
  method: 'GET',
  path: '/admin',
  sourceIp: '198.51.100.7',
  user: 'dev:alice',
  device: null,
  session: null,
  decision: { effect: 'deny', rule: null, reasons: ['group-missing'], mode: 'enforce', route: 'wiki' },
  latencyMs: 0,
  via: 'forward-auth',
};

describe('decision events', () => {
  it('a proxy decision record becomes a schema-valid decision event', () => {
    const event = decisionEvent({ ...proxied, session: 'sess-3', latencyMs: 0.2 });
    assert.deepEqual(event, {
      kind: 'decision',
      time: T0,
      requestId: 'req-77',
      user: 'dev:alice',
      device: null,
      session: 'sess-3',
      sourceIp: '198.51.100.7',
      route: 'wiki',
      method: 'GET',
      path: '/admin',
      host: 'wiki.corp.example',
      decision: 'deny',
      rule: null,
      reasons: ['group-missing'],
      latencyMs: 0.2,
      mode: 'enforce',
      via: 'forward-auth',
    });
    assert.equal(decisionEventSchema.safeParse(event).success, true);
  });

  it('copies only audited fields: nothing else on the record reaches the log', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, { clock: new ManualClock(T0) });
      const withExtras = {
        ...proxied,
        headers: { authorization: 'Bearer secret' },
        claims: { email: 'a@b' },
      };
      log.enqueue(decisionEvent(withExtras));
      await log.close();
      const rows = await store.db.selectFrom('audit_events').select('data_json').execute();
      assert.doesNotMatch(rows[0]?.data_json ?? '', /secret|claims|headers/);
      const { events } = await queryEvents(store);
      assert.equal(events[0]?.kind === 'decision' ? events[0].via : undefined, 'forward-auth');
    });
  });
});

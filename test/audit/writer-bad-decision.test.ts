// A decision whose facts cannot be made into an event (a caller's bug: no decision, a
// groups list that is not an array) must fail alone: it is recorded as an audit-writer
// alert in its place and the events around it are written, as for any event that cannot
// be encoded; it must not stop the batch, which would be retried forever while the queue
// fills and every request is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuditLog, type DecisionFacts } from '../../src/audit/index.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { admin, T0, withStore } from './helpers.ts';

const QUIET = { flushIntervalMs: 60_000, clock: new ManualClock(T0) };

function facts(overrides: Partial<DecisionFacts>): DecisionFacts {
  return {
    requestId: 'bad-one',
    time: T0,
    route: 'wiki',
    method: 'GET',
    path: '/',
    sourceIp: '198.51.100.7',
    user: 'dev:alice',
    device: null,
    decision: { effect: 'allow', rule: 'staff', reasons: [] },
    ...overrides,
  };
}

const BAD: { name: string; facts: DecisionFacts }[] = [
  { name: 'no decision', facts: facts({ decision: undefined as unknown as DecisionFacts['decision'] }) },
  { name: 'groups not an array', facts: facts({ groups: new Set(['staff']) as unknown as string[] }) },
];

describe('audit writer: one malformed decision does not stop the log', () => {
  for (const worker of [true, false]) {
    for (const bad of BAD) {
      it(`${bad.name} (${worker ? 'writer thread' : 'calling thread'})`, async () => {
        await withStore(freshSqliteUrl(), async (store) => {
          const log = createAuditLog(store, { ...QUIET, worker });
          log.enqueue(admin({ target: 'before' }));
          const accepted = log.enqueueDecision(bad.facts);
          log.enqueue(admin({ target: 'after' }));
          let failure: unknown;
          try {
            await log.flush();
          } catch (error) {
            failure = error;
          }
          const stats = log.stats;
          // Either refused at enqueue (the request is denied), or recorded as an alert in its
          // place; in both cases the events around it are written.
          await log.close().catch(() => {});
          assert.equal(
            failure,
            undefined,
            `flush failed (${(failure as Error | undefined)?.message}); cause: ${
              ((failure as { cause?: Error } | undefined)?.cause as Error | undefined)?.message
            }; accepted=${accepted}, writeErrors=${stats.writeErrors}, appended=${stats.appended}`,
          );
          assert.equal(accepted, true);
          assert.equal(stats.appended, 3);
          assert.equal(stats.invalid, 1);
        });
      });
    }
  }
});

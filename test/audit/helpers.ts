import { generateKeyPair } from 'jose';
import type { AdminEvent, DecisionEvent } from '../../src/audit/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { freshSqliteUrl } from '../support/databases.ts';

export const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

let counter = 0;

/** A decision event with plausible defaults; tests override what they look at. */
export function decision(overrides: Partial<DecisionEvent> = {}): DecisionEvent {
  counter += 1;
  return {
    kind: 'decision',
    time: T0,
    requestId: `req-${counter}`,
    user: 'dev:alice',
    device: 'dev-laptop-1',
    session: 'sess-1',
    sourceIp: '198.51.100.7',
    route: 'wiki',
    method: 'GET',
    path: '/index',
    decision: 'allow',
    rule: 'staff',
    reasons: [],
    latencyMs: 0.04,
    ...overrides,
  };
}

export function admin(overrides: Partial<AdminEvent> = {}): AdminEvent {
  return {
    kind: 'admin',
    time: T0,
    actor: 'dev:root',
    action: 'session.revoked',
    target: 'sess-9',
    ...overrides,
  };
}

export async function withStore<T>(url: string, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(url);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

export async function checkpointKeys() {
  return generateKeyPair('ES256', { extractable: true });
}

/**
 * A store URL and `worker` option for each place a batch can be appended: the writer's
 * thread (SQLite file), the calling thread (same, worker off), and `:memory:` (one
 * connection, so the calling thread whatever the option says).
 */
export function everyAppendingThread(): ReadonlyArray<readonly [string, boolean]> {
  return [
    [freshSqliteUrl(), true],
    [freshSqliteUrl(), false],
    ['sqlite://:memory:', true],
  ];
}

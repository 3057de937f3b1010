import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAuditLog, decisionEvent } from '../../src/audit/index.ts';
import { compilePolicies, parsePolicyText, replayDecisions } from '../../src/policy/index.ts';
import { openStore } from '../../src/store/index.ts';
import { runCli } from '../support/cli.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';

const policy = (groups: string) => `
policies:
  - name: app
    rules:
      - name: staff
        allow:
          groups: { any: [${groups}] }
routes:
  - host: app.test
    policy: app
`;

const CURRENT = compilePolicies([parsePolicyText(policy('engineering, sre'), 'current.yaml')]);
const USERS: Record<string, string[]> = {
  'dev:alice': ['engineering', 'sre'],
  'dev:bob': ['engineering'],
  'dev:carol': ['finance'],
  'dev:dave': ['sre'],
};

/** Decisions as the proxy would have logged them under the current policy. */
function requests() {
  const now = Date.now() - 3_600_000;
  return [
    ['dev:alice', '/admin'],
    ['dev:bob', '/dashboard'],
    ['dev:carol', '/dashboard'],
    ['dev:dave', '/dashboard'],
    ['dev:dave', '/metrics'],
    [null, '/dashboard'],
  ].map(([user, path], index) => {
    const groups = user ? USERS[user] : undefined;
    const decision = CURRENT.decide({
      host: 'app.test',
      path: path as string,
      method: 'GET',
      now,
      ...(user && groups ? { user: { id: user, groups } } : {}),
    });
    return decisionEvent({
      requestId: `r${index}`,
      time: now + index,
      route: decision.route ?? null,
      host: 'app.test',
      method: 'GET',
      path: path as string,
      sourceIp: '10.0.0.1',
      user: user ?? null,
      device: null,
      decision,
      ...(groups ? { groups } : {}),
    });
  });
}

describe('policy replay', () => {
  it('a draft that removes a group from a rule reports exactly the affected requests', () => {
    const draft = compilePolicies([parsePolicyText(policy('engineering'), 'draft.yaml')]);
    const records = requests().map((event) => ({ ...event, decision: event.decision }));
    const report = replayDecisions(draft, records);
    assert.equal(report.replayed, 6);
    assert.equal(report.changed, 2);
    assert.deepEqual(
      report.changes.map((change) => [change.route, change.user, change.before, change.after, change.count]),
      [['app.test/', 'dev:dave', 'allow', 'deny', 2]],
    );
  });

  it('an unchanged draft changes nothing, and events without groups are skipped, not guessed', () => {
    const same = compilePolicies([parsePolicyText(policy('engineering, sre'), 'same.yaml')]);
    const records = requests();
    const withoutGroups = { ...records[0]!, groups: undefined };
    const report = replayDecisions(same, [...records, withoutGroups]);
    assert.equal(report.changed, 0);
    assert.equal(report.skipped, 1);
  });

  it('vigil policy replay reads the audit log and prints the changes', async () => {
    const url = freshSqliteUrl();
    const store = await openStore(url);
    const log = createAuditLog(store);
    for (const event of requests()) assert.ok(log.enqueue(event));
    await log.close();
    await store.close();
    const draftFile = join(tempDir(), 'draft.yaml');
    writeFileSync(draftFile, policy('engineering'));
    const json = await runCli([
      'policy',
      'replay',
      '--policy',
      draftFile,
      '--since',
      '1d',
      '--database',
      url,
      '--json',
    ]);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { changed: number; changes: { user: string; count: number }[] };
    assert.equal(report.changed, 2);
    assert.deepEqual(
      report.changes.map((change) => [change.user, change.count]),
      [['dev:dave', 2]],
    );
    const table = await runCli([
      'policy',
      'replay',
      '--policy',
      draftFile,
      '--since',
      '1d',
      '--database',
      url,
    ]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /Replayed 6 logged decisions .*: 2 would change/);
    assert.match(table.stdout, /dev:dave\s+allow → deny\s+2/);
  });

  it('refuses a --since that is not a duration', async () => {
    const result = await runCli(['policy', 'replay', '--policy', 'x.yaml', '--since', 'last week']);
    assert.equal(result.code, 2);
  });
});

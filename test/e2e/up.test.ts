import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLI, runCli } from '../support/cli.ts';
import { Browser } from '../support/cookie-jar.ts';
import { startUp, stopUp } from '../support/demo.ts';
import { tempDir } from '../support/tmp.ts';

describe('vigil up (the demo)', () => {
  it('prints the demo as JSON; alice reaches the engineering app, bob gets the deny page; SIGTERM stops it; every decision is in the verified audit log', async () => {
    const dataDir = join(tempDir(), 'data');
    const { child, summary } = await startUp(undefined, dataDir);
    try {
      assert.match(summary.proxy, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(
        summary.apps.map((app) => app.name),
        ['engineering', 'finance'],
      );
      assert.deepEqual(
        summary.users.map((user) => user.name),
        ['alice', 'bob', 'carol'],
      );
      const engineering = summary.apps.find((app) => app.name === 'engineering')?.url ?? '';

      const alice = new Browser();
      const page = await alice.login(engineering, 'alice');
      assert.equal(page.status, 200, page.body);
      assert.match(page.body, /Engineering dashboard/);
      assert.match(page.body, /<strong id="user">dev:alice<\/strong>|<strong id="user">alice<\/strong>/);
      assert.match(page.body, /verified with Vigil's JWKS/);

      const bob = new Browser();
      const denied = await bob.login(engineering, 'bob');
      assert.equal(denied.status, 403);
      assert.match(denied.body, /Access denied/);
      assert.match(denied.body, /group-missing/);

      const finance = summary.apps.find((app) => app.name === 'finance')?.url ?? '';
      const aliceOnFinance = await alice.follow(finance);
      assert.equal(aliceOnFinance.status, 403, 'alice is not in finance');
    } finally {
      assert.equal(await stopUp(child), 0);
    }
    // Every decision is in the hash-chained log, flushed on shutdown.
    const database = `sqlite://${join(dataDir, 'vigil.db')}`;
    const denied = await runCli([
      'audit',
      'query',
      '--database',
      database,
      '--decision',
      'deny',
      '--route',
      'engineering',
      '--json',
    ]);
    assert.equal(denied.code, 0, denied.stderr);
    const events = JSON.parse(denied.stdout) as { user: string | null; reasons: string[] }[];
    assert.ok(
      events.some((event) => event.user === 'dev:bob' && event.reasons.includes('group-missing')),
      denied.stdout,
    );
    const verified = await runCli(['audit', 'verify', '--database', database]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });

  it('refuses a port that is not a number with a usage error', async () => {
    const child = spawn(process.execPath, [CLI, 'up', '--port', 'eighty'], { stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 2);
  });
});

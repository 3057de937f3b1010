import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_DEMO_PORT, defaultDemoDataDir, demoSessionCookie } from '../../src/server/demo.ts';
import { CLI, runCli } from '../support/cli.ts';
import { Browser } from '../support/cookie-jar.ts';
import { type DemoSummary, freePortTriple, startUp, startUpOn, stopUp } from '../support/demo.ts';
import { tempDir } from '../support/tmp.ts';

/** Two port triples that do not overlap (each demo listens on P, P+1 and P+2). */
async function twoPortTriples(): Promise<[number, number]> {
  const first = await freePortTriple();
  for (;;) {
    const second = await freePortTriple();
    if (Math.abs(second - first) > 2) return [first, second];
  }
}

/** Retries `check` until it returns true or `ms` pass. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

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

  it('keeps ./.vigil-data and _vigil_session on the default port, and gives any other port its own', () => {
    assert.equal(DEFAULT_DEMO_PORT, 8080);
    assert.equal(defaultDemoDataDir(8080), './.vigil-data');
    assert.equal(demoSessionCookie(8080), '_vigil_session');
    assert.equal(defaultDemoDataDir(9090), join('.vigil-data', '9090'));
    assert.equal(demoSessionCookie(9090), '_vigil_session_9090');
  });

  it('runs two demos side by side from one folder: separate databases, and logging in to one leaves the other logged in', async () => {
    const cwd = tempDir('vigil-up-cwd-');
    const [portA, portB] = await twoPortTriples();
    const a = await startUpOn(portA, undefined, cwd);
    try {
      const b = await startUpOn(portB, undefined, cwd);
      try {
        for (const port of [portA, portB])
          assert.ok(
            existsSync(join(cwd, '.vigil-data', String(port), 'vigil.db')),
            `no database for ${port}`,
          );
        const appOf = (summary: DemoSummary) =>
          summary.apps.find((app) => app.name === 'engineering')?.url ?? '';
        // One browser, as a person would use: cookies by host, whatever the port.
        const browser = new Browser();
        const aliceOnA = await browser.login(appOf(a.summary), 'alice');
        assert.equal(aliceOnA.status, 200, aliceOnA.body);
        const bobOnB = await browser.login(appOf(b.summary), 'bob');
        assert.equal(bobOnB.status, 403, bobOnB.body);
        assert.match(bobOnB.body, /Access denied/);

        // Back on A: still alice, straight to the app (no trip to the login page); B still knows bob.
        const visited = browser.visited.length;
        const againOnA = await browser.follow(appOf(a.summary));
        assert.deepEqual(
          browser.visited.slice(visited).map((url) => url.href),
          [appOf(a.summary)],
        );
        assert.equal(againOnA.status, 200, againOnA.body);
        assert.match(againOnA.body, /<strong id="user">[^<]*alice<\/strong>/);
        const againOnB = await browser.follow(appOf(b.summary));
        assert.equal(againOnB.status, 403, againOnB.body);
        assert.match(againOnB.body, /Access denied/);
        assert.ok(browser.jar.get(a.summary.proxy, `_vigil_session_${portA}`));
        assert.ok(browser.jar.get(b.summary.proxy, `_vigil_session_${portB}`));
      } finally {
        assert.equal(await stopUp(b.child), 0);
      }
    } finally {
      assert.equal(await stopUp(a.child), 0);
    }
  });

  it('follows edits of its policy file while it runs, and keeps the last good policy when an edit does not compile', async () => {
    const dataDir = join(tempDir(), 'data');
    const { child, summary } = await startUp(undefined, dataDir);
    try {
      const engineering = summary.apps.find((app) => app.name === 'engineering')?.url ?? '';
      const alice = new Browser();
      const before = await alice.login(engineering, 'alice');
      assert.equal(before.status, 200, before.body);

      // The engineering app now admits finance only: alice (engineering, sre) is denied.
      const policyFile = join(dataDir, 'demo-policy.yaml');
      const text = readFileSync(policyFile, 'utf8');
      assert.match(text, /Edit it while the\n# demo runs/);
      const edited = text.replace(
        'name: engineers\n        allow:\n          groups: { any: [engineering] }',
        'name: engineers\n        allow:\n          groups: { any: [finance] }',
      );
      assert.notEqual(edited, text);
      writeFileSync(policyFile, edited);
      let denied = before;
      await eventually(
        async () => {
          denied = await alice.follow(engineering);
          return denied.status === 403;
        },
        10_000,
        'alice denied after the edit',
      );
      assert.match(denied.body, /group-missing/);

      // A broken edit is reported (admin API) and the last good policy keeps deciding.
      const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
      writeFileSync(policyFile, `${edited}\n  - name: [unclosed\n`);
      await eventually(
        async () => {
          const response = await fetch(`${summary.admin}/api/v1/policy`, {
            headers: { authorization: `Bearer ${token}` },
          });
          const body = (await response.json()) as { last_error: string | null };
          return body.last_error !== null;
        },
        10_000,
        'the broken policy file reported',
      );
      const still = await alice.follow(engineering);
      assert.equal(still.status, 403, still.body);
    } finally {
      assert.equal(await stopUp(child), 0);
    }
  });

  it('refuses a port that is not a number with a usage error', async () => {
    const child = spawn(process.execPath, [CLI, 'up', '--port', 'eighty'], { stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 2);
  });
});

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli, spawnServer } from '../support/cli.ts';
import { freshPostgresUrl } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';

function writeConfig(dir: string, extra = ''): string {
  const path = join(dir, 'vigil.yaml');
  writeFileSync(
    path,
    `server:\n  proxy_listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(dir, 'data')}\n  shutdown_timeout: 2s\nlog:\n  format: json\n${extra}`,
  );
  return path;
}

describe('vigil server', () => {
  it('answers health, readiness, metrics and the admin API, then exits 0 on SIGTERM within 5 s', async () => {
    const dir = tempDir();
    const server = await spawnServer(writeConfig(dir));
    try {
      const health = await fetch(`${server.adminUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });

      const ready = await fetch(`${server.adminUrl}/readyz`);
      assert.equal(ready.status, 200);

      const metrics = await fetch(`${server.adminUrl}/metrics`);
      assert.equal(metrics.status, 200);
      const text = await metrics.text();
      assert.match(text, /^vigil_build_info\{.*version="\d+\.\d+\.\d+".*\} 1$/m);
      assert.match(text, /^vigil_process_cpu_seconds_total/m);

      const proxyHealth = await fetch(`${server.proxyUrl}/.vigil/healthz`);
      assert.equal(proxyHealth.status, 200);
      const unrouted = await fetch(`${server.proxyUrl}/anything`);
      assert.equal(unrouted.status, 404, 'a request that matches no route is refused');

      const anonymous = await fetch(`${server.adminUrl}/api/v1/status`);
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);

      const wrong = await fetch(`${server.adminUrl}/api/v1/status`, {
        headers: { authorization: 'Bearer nope' },
      });
      assert.equal(wrong.status, 401);

      const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
      const status = await fetch(`${server.adminUrl}/api/v1/status`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(status.status, 200);
      const body = (await status.json()) as { store: string; version: string };
      assert.equal(body.store, 'sqlite');

      const missing = await fetch(`${server.adminUrl}/api/v1/nothing`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(missing.status, 404);

      const openapi = (await (await fetch(`${server.adminUrl}/api/v1/openapi.json`)).json()) as {
        openapi: string;
        paths: Record<string, unknown>;
      };
      assert.equal(openapi.openapi, '3.1.0');
      assert.ok('/api/v1/status' in openapi.paths);
    } finally {
      const { code, ms } = await server.stop('SIGTERM');
      assert.equal(code, 0);
      assert.ok(ms < 5000, `stopped in ${ms} ms`);
    }
  });

  it('runs on PostgreSQL when the environment names it', async () => {
    const dir = tempDir();
    const server = await spawnServer(writeConfig(dir), { VIGIL_DATABASE_URL: freshPostgresUrl() });
    try {
      const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
      const status = await fetch(`${server.adminUrl}/api/v1/status`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(((await status.json()) as { store: string }).store, 'postgres');
      assert.equal((await fetch(`${server.adminUrl}/readyz`)).status, 200);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('keeps serving the last good config when the file turns bad, and picks up a good one on SIGHUP', async () => {
    const dir = tempDir();
    const path = writeConfig(dir);
    const server = await spawnServer(path);
    try {
      writeFileSync(
        path,
        readFileSync(path, 'utf8').replace('shutdown_timeout: 2s', 'shutdown_timeout: never'),
      );
      server.child.kill('SIGHUP');
      const deadline = Date.now() + 5000;
      while (
        !server.logs.some((entry) => entry.msg === 'config reload failed; the last good config keeps serving')
      ) {
        assert.ok(Date.now() < deadline, 'reload failure was logged');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.equal((await fetch(`${server.adminUrl}/healthz`)).status, 200);
      writeFileSync(
        path,
        readFileSync(path, 'utf8').replace('shutdown_timeout: never', 'shutdown_timeout: 1s'),
      );
      server.child.kill('SIGHUP');
      while (!server.logs.some((entry) => entry.msg === 'config reloaded')) {
        assert.ok(Date.now() < deadline + 5000, 'reload was logged');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('refuses to start on a bad config with file:line and exit 1', async () => {
    const dir = tempDir();
    const path = writeConfig(
      dir,
      'routes:\n  - name: x\n    from: https://x.example\n    to: gopher://x\n    policy: p\n',
    );
    const result = await runCli(['server', '--config', path]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /vigil\.yaml:11 routes\[0\]\.to: must be an http\(s\) URL/);
    assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/, 'no stack trace without --debug');
  });

  it('refuses to start when the database is down, with a clear reason and exit 1', async () => {
    const dir = tempDir();
    const result = await runCli(['server', '--config', writeConfig(dir)], {
      env: { VIGIL_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/test' },
    });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^vigil: cannot reach the database at postgres:\/\/postgres@127\.0\.0\.1:1\/test/m,
    );
  });

  it('refuses to start when a port is taken, naming the setting to change', async () => {
    const dir = tempDir();
    const first = await spawnServer(writeConfig(dir));
    try {
      const port = new URL(first.adminUrl).port;
      const other = tempDir();
      const result = await runCli(['server', '--config', writeConfig(other)], {
        env: { VIGIL_ADMIN_LISTEN: `127.0.0.1:${port}` },
      });
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /cannot listen for admin on 127\.0\.0\.1:\d+: EADDRINUSE \(port in use; change server\.admin_listen/,
      );
    } finally {
      await first.stop();
    }
  });
});

describe('vigil CLI', () => {
  it('--help lists only the working subcommands', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    const commands = [...result.stdout.matchAll(/^ {2}([a-z]+)\b/gm)].map((match) => match[1]);
    for (const expected of ['up', 'server', 'config', 'policy', 'audit', 'ca', 'session'])
      assert.ok(commands.includes(expected), expected);
    for (const absent of ['gateway', 'connect', 'workload']) assert.ok(!commands.includes(absent), absent);
  });

  it('reading commands refuse a database that does not exist instead of creating it', async () => {
    const missing = join(tempDir(), 'typo', 'vigil.db');
    for (const args of [
      ['ca', 'status'],
      ['audit', 'query'],
      ['audit', 'verify'],
    ]) {
      const result = await runCli([...args, '--database', `sqlite://${missing}`]);
      assert.equal(result.code, 1, args.join(' '));
      assert.match(
        result.stderr,
        /no database at .*typo\/vigil\.db \(pass --database or set VIGIL_DATABASE_URL\)/,
      );
    }
    assert.equal(existsSync(missing), false);
  });

  it('an unknown command or option is a usage error with exit 2', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2);
    assert.equal((await runCli(['server', '--no-such-flag'])).code, 2);
  });

  it('config check prints the problems and exits 1, or confirms a valid file', async () => {
    const dir = tempDir();
    const good = await runCli(['config', 'check', '--config', writeConfig(dir), '--json']);
    assert.equal(good.code, 0);
    assert.equal((JSON.parse(good.stdout) as { valid: boolean }).valid, true);
    const badPath = join(dir, 'bad.yaml');
    writeFileSync(badPath, 'server:\n  proxy_listen: nowhere\n');
    const bad = await runCli(['config', 'check', '--config', badPath, '--json']);
    assert.equal(bad.code, 1);
    const report = JSON.parse(bad.stdout) as { valid: boolean; problems: { line: number; path: string }[] };
    assert.deepEqual(
      report.problems.map((problem) => [problem.line, problem.path]),
      [[2, 'server.proxy_listen']],
    );
  });
});

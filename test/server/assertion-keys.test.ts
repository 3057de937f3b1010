// Two `vigil server` replicas on one PostgreSQL database sign assertions with the same
// keys; a replica that cannot open them refuses to start.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli, spawnServer } from '../support/cli.ts';
import { freshPostgresUrl } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';

function writeConfig(dir: string, sessionKeyFile: string | undefined): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'vigil.yaml');
  const session = sessionKeyFile ? `session:\n  secret_file: ${sessionKeyFile}\n` : '';
  writeFileSync(
    path,
    `server:\n  proxy_listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(dir, 'data')}\n  shutdown_timeout: 2s\nlog:\n  format: json\n${session}`,
  );
  return path;
}

function sessionKeyFile(dir: string): string {
  const path = join(dir, 'session.key');
  writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  return path;
}

describe('assertion keys across server replicas', () => {
  it('replicas sharing the database and session key publish one JWKS', async () => {
    const dir = tempDir();
    const keyFile = sessionKeyFile(dir);
    const env = { VIGIL_DATABASE_URL: freshPostgresUrl() };
    const [first, second] = await Promise.all([
      spawnServer(writeConfig(join(dir, 'a'), keyFile), env),
      spawnServer(writeConfig(join(dir, 'b'), keyFile), env),
    ]);
    try {
      const jwks = await Promise.all(
        [first, second].map(async (server) => (await fetch(`${server.proxyUrl}/.vigil/jwks.json`)).text()),
      );
      assert.equal(jwks[0], jwks[1]);
      const keys = (JSON.parse(jwks[0] ?? '') as { keys: { kid: string; d?: string }[] }).keys;
      assert.equal(keys.length, 1);
      assert.equal(keys[0]?.d, undefined);
    } finally {
      assert.equal((await first.stop()).code, 0);
      assert.equal((await second.stop()).code, 0);
    }
  });

  it('a replica with another session key refuses to start, naming the setting', async () => {
    const dir = tempDir();
    const url = freshPostgresUrl();
    const first = await spawnServer(writeConfig(join(dir, 'a'), sessionKeyFile(dir)), {
      VIGIL_DATABASE_URL: url,
    });
    try {
      // No secret_file: this one generates a session key of its own in its data dir.
      const started = Date.now();
      const result = await runCli(['server', '--config', writeConfig(join(dir, 'b'), undefined)], {
        env: { VIGIL_DATABASE_URL: url },
      });
      assert.equal(result.code, 1);
      assert.ok(Date.now() - started < 20_000, 'it exits, leaving nothing running');
      assert.match(
        result.stderr,
        /assertion signing key [0-9a-f-]{36} cannot be used: its private key does not decrypt: every replica must use the same session key \(session\.secret_file\)/,
      );
      assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/, 'no stack trace without --debug');
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
  });
});

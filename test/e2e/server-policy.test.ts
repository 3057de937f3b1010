import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli, spawnServer } from '../support/cli.ts';
import { tempDir } from '../support/tmp.ts';

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;

function setup(): { dir: string; config: string; policy: string } {
  const dir = tempDir();
  const policy = join(dir, 'internal-tools.yaml');
  copyFileSync(join(EXAMPLES, 'policies/internal-tools.yaml'), policy);
  const config = join(dir, 'vigil.yaml');
  writeFileSync(
    config,
    [
      'server:',
      '  proxy_listen: 127.0.0.1:0',
      '  admin_listen: 127.0.0.1:0',
      `  data_dir: ${join(dir, 'data')}`,
      'log: { format: json }',
      'policy_files: [internal-tools.yaml]',
      'routes:',
      '  - name: grafana',
      '    from: https://grafana.corp.example',
      '    to: http://127.0.0.1:3000',
      '    policy: internal-tools',
      '',
    ].join('\n'),
  );
  return { dir, config, policy };
}

async function policyStatus(
  adminUrl: string,
  dir: string,
): Promise<{ last_error: string | null; routes: unknown[] }> {
  const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
  const response = await fetch(`${adminUrl}/api/v1/policy`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200);
  return (await response.json()) as { last_error: string | null; routes: unknown[] };
}

async function until(predicate: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await predicate())) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('vigil server with policies', () => {
  it('serves the routes of vigil.yaml with the policy files it names', async () => {
    const { dir, config } = setup();
    const server = await spawnServer(config);
    try {
      const status = await policyStatus(server.adminUrl, dir);
      assert.equal(status.last_error, null);
      assert.deepEqual(status.routes, [
        {
          name: 'grafana',
          host: 'grafana.corp.example',
          pathPrefix: '/',
          policy: 'internal-tools',
          mode: 'enforce',
          source: `${config} routes[0]`,
        },
      ]);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('keeps the last good policy when a policy file turns bad, and reports file:line', async () => {
    const { dir, config, policy } = setup();
    const server = await spawnServer(config);
    try {
      writeFileSync(policy, readFileSync(policy, 'utf8').replace('device: managed', 'device: sort-of'));
      await until(
        async () => (await policyStatus(server.adminUrl, dir)).last_error !== null,
        'reload error reported',
      );
      const status = await policyStatus(server.adminUrl, dir);
      assert.match(status.last_error ?? '', /internal-tools\.yaml:\d+/);
      assert.equal(status.routes.length, 1, 'the route keeps serving');
      assert.ok(
        server.logs.some((entry) => entry.msg === 'policy reload failed; the last good policy keeps serving'),
      );
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('refuses to start when a route names a policy that does not exist', async () => {
    const { config } = setup();
    writeFileSync(config, readFileSync(config, 'utf8').replace('policy: internal-tools', 'policy: nowhere'));
    const result = await runCli(['server', '--config', config]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /nowhere/);
  });

  it('the example config loads', async () => {
    const result = await runCli(['config', 'check', '--config', join(EXAMPLES, 'vigil.yaml'), '--json']);
    assert.equal(result.code, 0, result.stderr);
  });
});

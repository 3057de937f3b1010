import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { verifyWebhookSignature } from '../../src/audit/index.ts';
import { runCli, spawnServer } from '../support/cli.ts';
import { tempDir } from '../support/tmp.ts';

describe('vigil server alerts', () => {
  it('more than 5 denials from one source reach the on-call webhook, HMAC-signed, and show in the metrics', async () => {
    const received: { verified: boolean; body: string }[] = [];
    const hook = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on('end', () => {
        const verified = verifyWebhookSignature(
          'hook-secret',
          {
            timestamp: request.headers['x-vigil-timestamp'] as string | undefined,
            signature: request.headers['x-vigil-signature'] as string | undefined,
          },
          body,
          Date.now(),
        );
        received.push({ verified, body });
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    after(() => hook.close());
    const dir = tempDir();
    writeFileSync(join(dir, 'hook.secret'), 'hook-secret\n', { mode: 0o600 });
    writeFileSync(
      join(dir, 'policy.yaml'),
      'policies:\n  - name: eng\n    rules:\n      - name: engineers\n        allow: { groups: { any: [engineering] } }\n',
    );
    const config = join(dir, 'vigil.yaml');
    writeFileSync(
      config,
      `server:
  proxy_listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
log: { format: json }
policy_files: [policy.yaml]
audit:
  webhooks:
    - url: http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts
      secret_file: hook.secret
routes:
  - name: app
    from: http://app.test
    to: http://127.0.0.1:1
    policy: eng
`,
    );
    const server = await spawnServer(config);
    try {
      const { port } = new URL(server.proxyUrl);
      const { request } = await import('node:http');
      for (let attempt = 0; attempt < 6; attempt++) {
        await new Promise<void>((resolve, reject) => {
          const call = request(
            { host: '127.0.0.1', port, path: `/try-${attempt}`, headers: { host: 'app.test' } },
            (response) => {
              assert.equal(response.statusCode, 401);
              response.resume();
              response.on('end', resolve);
            },
          );
          call.on('error', reject);
          call.end();
        });
      }
      const deadline = Date.now() + 5000;
      while (!received.some((entry) => entry.body.includes('brute-force')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const alert = received.find((entry) => entry.body.includes('brute-force'));
      assert.ok(alert, `no brute-force alert posted: ${JSON.stringify(received)}`);
      assert.equal(alert.verified, true, 'the HMAC verifies with the shared secret');
      const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
      assert.match(
        metrics,
        /^vigil_proxy_decisions_total\{route="app",effect="deny",mode="enforce"[^}]*\} 6$/m,
      );
      assert.match(
        metrics,
        /^vigil_proxy_denials_total\{route="app",reason="user-unauthenticated"[^}]*\} 6$/m,
      );
      assert.match(metrics, /^vigil_proxy_decision_seconds_count\{[^}]*\} 6$/m);
      assert.match(metrics, /^vigil_audit_alerts_total\{detector="brute-force"[^}]*\} 1$/m);
      assert.match(metrics, /^# TYPE vigil_identity_jwks_fetches_total counter$/m);
      assert.match(metrics, /^vigil_audit_queue_depth/m);
      assert.match(metrics, /^vigil_devices\{state="managed"[^}]*\} 0$/m);
      assert.match(metrics, /^vigil_identity_live_sessions/m);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
    const alerts = await runCli([
      'audit',
      'query',
      '--database',
      `sqlite://${join(dir, 'data', 'vigil.db')}`,
      '--kind',
      'alert',
      '--json',
    ]);
    assert.equal(alerts.code, 0, alerts.stderr);
    assert.match(alerts.stdout, /brute-force/);
  });

  it('an unknown time zone for the after-hours detector is a config error with its line', async () => {
    const dir = tempDir();
    const config = join(dir, 'vigil.yaml');
    writeFileSync(config, 'audit:\n  detectors:\n    after_hours:\n      time_zone: Mars/Olympus\n');
    const result = await runCli(['config', 'check', '--config', config]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /vigil\.yaml:4 audit\.detectors\.after_hours\.time_zone: must be an IANA time zone/,
    );
  });
});

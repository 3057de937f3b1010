import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/index.ts';
import { tempDir } from '../support/tmp.ts';

const dir = tempDir();
const secret = join(dir, 'client.secret');
writeFileSync(secret, 'shh\n');
chmodSync(secret, 0o600);
const open = join(dir, 'open.secret');
writeFileSync(open, 'shh\n');
chmodSync(open, 0o644);

function problemsOf(text: string): string[] {
  try {
    parseConfig(text, 'vigil.yaml', {}, dir);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error.message.split('\n');
  }
  assert.fail('expected the config to be refused');
}

describe('identity config', () => {
  it('defaults: no identity providers, a 12h/1h session, dev IdP off', () => {
    const { config } = parseConfig('', 'vigil.yaml', {}, dir);
    assert.deepEqual(config.identity_providers, []);
    assert.deepEqual(config.session, {
      cookie_name: '_vigil_session',
      max_age: 12 * 3_600_000,
      idle_timeout: 3_600_000,
    });
    assert.equal(config.dev_idp, false);
  });

  it('reads an identity provider with defaults for claims, algorithms, leeway and scopes', () => {
    const { config } = parseConfig(
      `identity_providers:
  - name: okta
    issuer: https://corp.okta.example
    client_id: vigil
    client_secret_file: client.secret
    claims:
      groups: realm_access.roles
routes:
  - name: grafana
    from: https://grafana.corp.example
    to: http://127.0.0.1:3000
    policy: p
    idp: okta
    reauth_after: 4h
`,
      'vigil.yaml',
      {},
      dir,
    );
    const idp = config.identity_providers[0];
    assert.ok(idp);
    assert.equal(idp.client_secret_file?.reveal(), 'shh');
    assert.equal(idp.token_endpoint_auth_method, 'client_secret_basic');
    assert.deepEqual(idp.claims, { user_id: 'sub', email: 'email', groups: 'realm_access.roles' });
    assert.ok(!(idp.algorithms as string[]).includes('none'));
    assert.equal(idp.leeway, 30_000);
    assert.ok(idp.scopes.includes('openid'));
    assert.equal(config.routes[0]?.reauth_after, 4 * 3_600_000);
    assert.equal(config.routes[0]?.idp, 'okta');
  });

  it('dev_idp: true takes the defaults', () => {
    const { config } = parseConfig('dev_idp: true\n', 'vigil.yaml', {}, dir);
    assert.notEqual(config.dev_idp, false);
    if (config.dev_idp === false) return;
    assert.equal(config.dev_idp.name, 'dev');
    assert.deepEqual(config.dev_idp.listen, { host: '127.0.0.1', port: 9400 });
  });

  it('refuses alg none and symmetric algorithms with file:line', () => {
    const problems = problemsOf(`identity_providers:
  - name: okta
    issuer: https://corp.okta.example
    client_id: vigil
    client_secret_file: client.secret
    algorithms: [RS256, none, HS256]
`);
    assert.ok(
      problems.some((line) => line.startsWith('vigil.yaml:6 identity_providers[0].algorithms[1]')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((line) => line.startsWith('vigil.yaml:6 identity_providers[0].algorithms[2]')),
      problems.join('\n'),
    );
  });

  it('refuses a non-http issuer, an unknown key and a client secret readable by others', () => {
    const problems = problemsOf(`identity_providers:
  - name: okta
    issuer: ftp://corp.okta.example
    client_id: vigil
    client_secret_file: open.secret
    colour: blue
`);
    assert.ok(
      problems.some((line) =>
        /^vigil\.yaml:3 identity_providers\[0\]\.issuer: must be an http\(s\) URL/.test(line),
      ),
    );
    assert.ok(
      problems.some((line) =>
        /^vigil\.yaml:5 identity_providers\[0\]\.client_secret_file: .*chmod 600/.test(line),
      ),
    );
    assert.ok(
      problems.some((line) => /^vigil\.yaml:\d identity_providers\[0\].*colour/.test(line)),
      problems.join('\n'),
    );
  });

  it('names the missing credential for the chosen auth method', () => {
    const problems = problemsOf(`identity_providers:
  - name: okta
    issuer: https://corp.okta.example
    client_id: vigil
    token_endpoint_auth_method: private_key_jwt
`);
    assert.ok(
      problems.some((line) =>
        /identity_providers\[0\]\.private_key_file: private_key_jwt needs private_key_file/.test(line),
      ),
      problems.join('\n'),
    );
  });

  it('refuses duplicate provider names, a route naming an unknown provider and a bad reauth_after', () => {
    const problems = problemsOf(`identity_providers:
  - name: okta
    issuer: https://a.example
    client_id: vigil
    client_secret_file: client.secret
  - name: okta
    issuer: https://b.example
    client_id: vigil
    client_secret_file: client.secret
routes:
  - name: grafana
    from: https://grafana.corp.example
    to: http://127.0.0.1:3000
    policy: p
    idp: google
`);
    assert.ok(
      problems.some((line) => /^vigil\.yaml:6 identity_providers\[1\]\.name: duplicate/.test(line)),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((line) =>
        /^vigil\.yaml:15 routes\[0\]\.idp: no identity provider named "google"/.test(line),
      ),
      problems.join('\n'),
    );
    const reauth = problemsOf(`routes:
  - name: grafana
    from: https://grafana.corp.example
    to: http://127.0.0.1:3000
    policy: p
    reauth_after: soon
`);
    assert.ok(
      reauth.some((line) => /^vigil\.yaml:6 routes\[0\]\.reauth_after: must be a duration/.test(line)),
      reauth.join('\n'),
    );
    const timeouts = problemsOf(`routes:
  - name: grafana
    from: https://grafana.corp.example
    to: http://127.0.0.1:3000
    policy: p
    timeout: 0s
    idle_timeout: soon
`);
    assert.ok(
      timeouts.some((line) => /^vigil\.yaml:6 routes\[0\]\.timeout: must be longer than 0s/.test(line)),
      timeouts.join('\n'),
    );
    assert.ok(
      timeouts.some((line) => /^vigil\.yaml:7 routes\[0\]\.idle_timeout: must be a duration/.test(line)),
      timeouts.join('\n'),
    );
  });

  it('refuses a session cookie name with unsafe characters and a bad idle_timeout', () => {
    const problems = problemsOf(`session:
  cookie_name: "a;b"
  idle_timeout: forever
`);
    assert.ok(
      problems.some((line) => line.startsWith('vigil.yaml:2 session.cookie_name')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((line) => line.startsWith('vigil.yaml:3 session.idle_timeout')),
      problems.join('\n'),
    );
  });
});

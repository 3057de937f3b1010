import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig, Secret } from '../../src/config/index.ts';
import { tempDir } from '../support/tmp.ts';

const dir = tempDir();

function write(name: string, text: string, mode = 0o644): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error.message.split('\n');
  }
  assert.fail('expected the config to be refused');
}

const VALID = `server:
  proxy_listen: 127.0.0.1:8443
  admin_listen: "[::1]:9090"
  shutdown_timeout: 5s
database:
  url: sqlite:///tmp/vigil.db
policy_files: [policies.yaml]
routes:
  - name: grafana
    from: https://grafana.corp.example
    to: http://127.0.0.1:3000
    policy: internal-tools
  - name: wiki
    from: https://wiki.corp.example/docs
    to: [http://127.0.0.1:3001, http://127.0.0.1:3002]
    policy: wiki
    mode: audit
`;

describe('config loader', () => {
  it('loads a valid file with defaults filled in and values frozen', () => {
    const { config } = loadConfig(write('valid.yaml', VALID), {});
    assert.deepEqual(config.server.proxy_listen, { host: '127.0.0.1', port: 8443 });
    assert.deepEqual(config.server.admin_listen, { host: '::1', port: 9090 });
    assert.equal(config.server.shutdown_timeout, 5000);
    assert.equal(config.log.level, 'info');
    assert.equal(config.policy_files[0], join(dir, 'policies.yaml'));
    assert.deepEqual(config.routes[0]?.to, ['http://127.0.0.1:3000']);
    assert.equal(config.routes[1]?.mode, 'audit');
    assert.equal(config.routes[0]?.mode, 'enforce');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.routes[0]));
  });

  it('an empty file is a valid config of defaults', () => {
    const { config } = parseConfig('', 'empty.yaml');
    assert.deepEqual(config.server.proxy_listen, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(config.routes, []);
  });

  it('environment variables override listen addresses and the database URL', () => {
    const { config } = loadConfig(write('env.yaml', VALID), {
      VIGIL_PROXY_LISTEN: ':7000',
      VIGIL_DATABASE_URL: 'postgres://127.0.0.1/test',
    });
    assert.deepEqual(config.server.proxy_listen, { host: '0.0.0.0', port: 7000 });
    assert.equal(config.database.url, 'postgres://127.0.0.1/test');
    assert.equal(config.server.admin_listen.port, 9090);
  });

  it('an invalid environment override names the variable', () => {
    const problems = problemsOf(() =>
      loadConfig(write('env-bad.yaml', VALID), { VIGIL_ADMIN_LISTEN: 'nope' }),
    );
    assert.match(
      problems[0] ?? '',
      /^environment VIGIL_ADMIN_LISTEN server\.admin_listen: must be host:port/,
    );
  });

  it('reads a secret from a 0600 file and never prints it', () => {
    const secretPath = write('admin.token', 'super-secret-token\n', 0o600);
    const { config } = parseConfig(`admin:\n  token_file: ${secretPath}\n`, 'secret.yaml');
    const token = config.admin.token_file;
    assert.ok(token instanceof Secret);
    assert.equal(token.reveal(), 'super-secret-token');
    assert.doesNotMatch(JSON.stringify(config), /super-secret-token/);
    assert.doesNotMatch(String(token), /super-secret-token/);
  });
});

describe('malformed config files are refused with file:line and the field', () => {
  const cases: { name: string; text: string; expected: RegExp; setup?: () => void }[] = [
    {
      name: 'bad-yaml.yaml',
      text: 'server:\n  proxy_listen: [1\nroutes: []\n',
      expected: /^bad-yaml\.yaml:\d+: invalid YAML: /,
    },
    {
      name: 'tab-indent.yaml',
      text: 'server:\n\tproxy_listen: :80\n',
      expected: /^tab-indent\.yaml:2: invalid YAML/,
    },
    {
      name: 'duplicate-key.yaml',
      text: 'log:\n  level: info\n  level: debug\n',
      expected: /^duplicate-key\.yaml:3: invalid YAML: Map keys must be unique/,
    },
    {
      name: 'unknown-top.yaml',
      text: 'server:\n  proxy_listen: :80\nroutez: []\n',
      expected: /^unknown-top\.yaml:3 routez: unknown field/,
    },
    {
      name: 'unknown-nested.yaml',
      text: 'server:\n  proxy_listen: :80\n  proxy_lisen: :81\n',
      expected: /^unknown-nested\.yaml:3 server\.proxy_lisen: unknown field/,
    },
    {
      name: 'wrong-type.yaml',
      text: 'policy_files: policies.yaml\n',
      expected: /^wrong-type\.yaml:1 policy_files: Invalid input: expected array/,
    },
    {
      name: 'bad-url.yaml',
      text: [
        'routes:',
        '  - name: a',
        '    from: https://a.example',
        '    to: http://127.0.0.1:1',
        '    policy: p',
        '  - name: b',
        '    from: https://b.example',
        '    to: http://127.0.0.1:2',
        '    policy: p',
        '  - name: c',
        '    from: https://c.example',
        '    to: ftp://files.example',
        '    policy: p',
        '',
      ].join('\n'),
      expected: /^bad-url\.yaml:12 routes\[2\]\.to: must be an http\(s\) URL/,
    },
    {
      name: 'bad-duration.yaml',
      text: 'server:\n  shutdown_timeout: soon\n',
      expected: /^bad-duration\.yaml:2 server\.shutdown_timeout: must be a duration/,
    },
    {
      name: 'bad-listen.yaml',
      text: 'server:\n  admin_listen: localhost\n',
      expected: /^bad-listen\.yaml:2 server\.admin_listen: must be host:port/,
    },
    {
      name: 'bad-enum.yaml',
      text: 'routes:\n  - name: a\n    from: https://a.example\n    to: http://127.0.0.1:1\n    policy: p\n    mode: permissive\n',
      expected: /^bad-enum\.yaml:6 routes\[0\]\.mode: Invalid option: expected one of "enforce"\|"audit"/,
    },
    {
      name: 'missing-field.yaml',
      text: 'routes:\n  - name: a\n    from: https://a.example\n    to: http://127.0.0.1:1\n',
      expected:
        /^missing-field\.yaml:2 routes\[0\]\.policy: Invalid input: expected string, received undefined/,
    },
    {
      name: 'duplicate-route.yaml',
      text: 'routes:\n  - {name: a, from: "https://a.example", to: "http://127.0.0.1:1", policy: p}\n  - {name: a, from: "https://b.example", to: "http://127.0.0.1:1", policy: p}\n',
      expected: /^duplicate-route\.yaml:3 routes\[1\]\.name: duplicate route name "a"/,
    },
    {
      name: 'scalar-top.yaml',
      text: 'just a string\n',
      expected: /^scalar-top\.yaml:1: the top level must be a mapping/,
    },
    {
      name: 'open-secret.yaml',
      text: 'admin:\n  token_file: open.token\n',
      setup: () => write('open.token', 'secret', 0o644),
      expected:
        /^open-secret\.yaml:2 admin\.token_file: .*open\.token is readable by group or others \(mode 0644\); run chmod 600/,
    },
    {
      name: 'missing-secret.yaml',
      text: 'admin:\n  token_file: nowhere.token\n',
      expected: /^missing-secret\.yaml:2 admin\.token_file: .*nowhere\.token does not exist/,
    },
  ];

  for (const testCase of cases) {
    it(`refuses ${testCase.name}`, () => {
      testCase.setup?.();
      const path = write(testCase.name, testCase.text);
      const problems = problemsOf(() => loadConfig(path, {}));
      // Errors name the file as given; here that is the absolute temp path.
      const relative = problems.map((line) => line.replace(`${dir}/`, ''));
      assert.match(relative[0] ?? '', testCase.expected);
    });
  }

  it('reports every problem, not just the first', () => {
    const path = write('many.yaml', 'server:\n  proxy_listen: x\n  admin_listen: y\nextra: 1\n');
    assert.equal(problemsOf(() => loadConfig(path, {})).length, 3);
  });

  it('a missing file says how to fix it', () => {
    const problems = problemsOf(() => loadConfig(join(dir, 'absent.yaml'), {}));
    assert.match(problems[0] ?? '', /absent\.yaml: file not found; pass --config PATH/);
  });
});

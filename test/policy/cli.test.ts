import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const main = join(root, 'src/cli/main.ts');
const examples = join(root, 'examples/policies');
const dir = mkdtempSync(join(tmpdir(), 'vigil-policy-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function vigil(...args: string[]) {
  const result = spawnSync(process.execPath, [main, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const policy = `policies:
  - name: admin
    rules:
      - name: sre-only
        allow: { groups: { any: [sre] } }
      - name: contractors-never-admin
        deny:
          and: [ { groups: { any: [contractors] } }, { path: { prefix: /admin } } ]
routes:
  - host: admin.corp.example
    policy: admin
`;

test('vigil policy test passes on the example policies', () => {
  const files = readdirSync(examples).map((file) => join('examples/policies', file));
  const result = vigil('policy', 'test', ...files);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\d+ tests passed/);
});

test('vigil policy check accepts the example policies', () => {
  const result = vigil('policy', 'check', ...readdirSync(examples).map((file) => join(examples, file)));
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^ok: \d+ files, \d+ policies, \d+ routes/);
});

test('a failing policy test exits 1 with a readable expected/got message', () => {
  writeFileSync(join(dir, 'admin.yaml'), policy);
  writeFileSync(
    join(dir, 'admin.test.yaml'),
    `policy_files: [admin.yaml]
now: "2026-03-02T09:00:00Z"
tests:
  - name: engineers reach the admin panel
    request: { host: admin.corp.example, path: /, user: { id: e1, groups: [engineering] } }
    expect: { effect: allow, rule: sre-only }
  - name: sre reach the admin panel
    request: { host: admin.corp.example, path: /, user: { id: s1, groups: [sre] } }
    expect: { effect: allow, rule: sre-only }
`,
  );
  const result = vigil('policy', 'test', join(dir, 'admin.test.yaml'));
  assert.equal(result.code, 1);
  assert.match(result.stdout, /FAIL +engineers reach the admin panel/);
  assert.match(
    result.stdout,
    /expected allow \(rule sre-only\), got deny \(rule none\) reasons: group-missing/,
  );
  assert.match(
    result.stderr,
    /1 of 2 policy tests failed; first: .*admin\.test\.yaml:4 "engineers reach the admin panel"/,
  );
  const json = vigil('policy', 'test', '--json', join(dir, 'admin.test.yaml'));
  assert.equal(json.code, 1);
  const rows = JSON.parse(json.stdout) as { result: string; reasons: string }[];
  assert.deepEqual(
    rows.map((row) => [row.result, row.reasons]),
    [
      ['FAIL', 'group-missing'],
      ['ok', ''],
    ],
  );
});

test('a change that opens /admin to contractors fails the build', () => {
  writeFileSync(
    join(dir, 'open.yaml'),
    policy.replace(/ {6}- name: contractors-never-admin[\s\S]*?\/admin } } \]\n/, ''),
  );
  writeFileSync(
    join(dir, 'open.test.yaml'),
    `policy_files: [open.yaml]
tests:
  - name: contractors never reach /admin
    request: { host: admin.corp.example, path: /admin, user: { id: c1, groups: [contractors, sre] } }
    expect: { effect: deny, rule: contractors-never-admin }
`,
  );
  const result = vigil('policy', 'test', join(dir, 'open.test.yaml'));
  assert.equal(result.code, 1);
  assert.match(result.stdout, /expected deny \(rule contractors-never-admin\), got allow \(rule sre-only\)/);
});

test('vigil policy check exits 1 on schema errors and shadowed allows, naming file and line', () => {
  writeFileSync(join(dir, 'broken.yaml'), policy.replace('any: [sre]', 'any: sre'));
  const broken = vigil('policy', 'check', join(dir, 'broken.yaml'));
  assert.equal(broken.code, 1);
  assert.match(
    broken.stdout,
    /schema-error +.*broken\.yaml:5 +policies\[0\]\.rules\[0\]\.allow\.groups\.any: expected array of strings/,
  );
  writeFileSync(
    join(dir, 'shadow.yaml'),
    `${policy.replace('routes:', '      - { name: nobody, deny: true }\nroutes:')}`,
  );
  const shadow = vigil('policy', 'check', '--json', join(dir, 'shadow.yaml'));
  assert.equal(shadow.code, 1);
  const findings = JSON.parse(shadow.stdout) as { code: string; location: string }[];
  assert.deepEqual(
    findings.map((finding) => finding.code),
    ['allow-shadowed'],
  );
  assert.match(findings[0]?.location ?? '', /shadow\.yaml:4$/);
});

test('vigil policy eval prints the decision and the explain trace as JSON', () => {
  writeFileSync(join(dir, 'eval.yaml'), policy);
  writeFileSync(
    join(dir, 'req.json'),
    JSON.stringify({
      host: 'admin.corp.example',
      path: '/admin/x',
      now: '2026-03-02T09:00:00Z',
      user: { id: 'c', groups: ['contractors'] },
    }),
  );
  const result = vigil(
    'policy',
    'eval',
    '--policy',
    join(dir, 'eval.yaml'),
    '--input',
    join(dir, 'req.json'),
    '--json',
  );
  assert.equal(result.code, 0, result.stderr);
  const decision = JSON.parse(result.stdout);
  assert.equal(decision.effect, 'deny');
  assert.equal(decision.rule, 'contractors-never-admin');
  assert.deepEqual(
    decision.explain.rules.map((rule: { rule: string; matched: boolean }) => [rule.rule, rule.matched]),
    [
      ['sre-only', false],
      ['contractors-never-admin', true],
    ],
  );
});

test('usage mistakes exit 2', () => {
  assert.equal(vigil('policy', 'test', join(examples, 'admin.yaml')).code, 2);
  assert.equal(
    vigil('policy', 'eval', '--policy', join(examples, 'admin.yaml'), '--input', join(dir, 'nope.json')).code,
    2,
  );
  assert.equal(vigil('policy', 'check').code, 2);
});

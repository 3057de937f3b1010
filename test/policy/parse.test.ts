import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVigilError } from '../../src/errors.ts';
import { compilePolicies, parsePolicyText } from '../../src/policy/index.ts';

function errorOf(text: string, file = 'policies.yaml'): string {
  try {
    compilePolicies([parsePolicyText(text, file)]);
  } catch (error) {
    assert.ok(isVigilError(error, 'ERR_POLICY_INVALID'), String(error));
    return error.message;
  }
  assert.fail('expected the policy to be rejected');
}

const header = 'policies:\n  - name: p\n    rules:\n';

test('a wrong type names file, line and the dotted field', () => {
  const text = `${header}      - name: sre\n        allow:\n          groups:\n            any: sre\n`;
  assert.equal(
    errorOf(text),
    'policies.yaml:7 policies[0].rules[0].allow.groups.any: expected array of strings',
  );
});

test('the error points at the rule deep in a long file', () => {
  const rules = Array.from(
    { length: 3 },
    (_, index) => `      - name: r${index}\n        allow: { method: [GET] }\n`,
  ).join('');
  const text = `policies:\n  - name: a\n    rules:\n${rules}  - name: b\n    rules: []\n  - name: c\n    rules:\n      - name: ok\n        allow: true\n      - name: bad\n        allow:\n          groups: { any: [1] }\n`;
  assert.equal(errorOf(text), 'policies.yaml:18 policies[2].rules[1].allow.groups.any[0]: expected string');
});

test('an unknown key is an error on the line of the key', () => {
  const text = `${header}      - name: sre\n        allow:\n          groups: { any: [sre] }\n          gruops: { any: [x] }\n`;
  assert.equal(errorOf(text), 'policies.yaml:7 policies[0].rules[0].allow.gruops: unknown field "gruops"');
  assert.match(errorOf('policy: []\n'), /^policies\.yaml:1 policy: unknown field "policy"$/);
  assert.match(
    errorOf(`${header}      - name: r\n        allow: true\n        effect: allow\n`),
    /:6 policies\[0\]\.rules\[0\]\.effect: unknown field/,
  );
});

test('malformed YAML is reported with its line', () => {
  assert.match(errorOf(`${header}      - name: r\n        allow: { method: [GET }\n`), /^policies\.yaml:5 /);
  assert.match(
    errorOf('policies:\n  - name: a\n  - name: b\n    name: c\n'),
    /^policies\.yaml:4 .*[Mm]ap keys must be unique/,
  );
  assert.match(errorOf('policies:\n\t- name: a\n'), /^policies\.yaml:2 /);
});

test('a rule needs exactly one of allow and deny', () => {
  assert.match(
    errorOf(`${header}      - name: r\n`),
    /:4 policies\[0\]\.rules\[0\]: expected exactly one of allow, deny/,
  );
  assert.match(
    errorOf(`${header}      - name: r\n        allow: true\n        deny: true\n`),
    /:4 policies\[0\]\.rules\[0\]: expected exactly one of allow, deny/,
  );
  assert.match(
    errorOf(`${header}      - name: r\n        allow: yes please\n`),
    /:5 policies\[0\]\.rules\[0\]\.allow: expected true or a condition object/,
  );
  assert.match(errorOf(`${header}      - name: r\n        allow: {}\n`), /expected at least one condition/);
});

test('values are validated where they are written', () => {
  const cases: [string, RegExp][] = [
    ['source_ip: [10.0.0.0/33]', /allow\.source_ip\[0\]: expected an IPv4 or IPv6 address or CIDR/],
    [
      'time: { zone: Mars/Olympus, hours: { from: "08:00", to: "18:00" } }',
      /allow\.time\.zone: unknown IANA time zone/,
    ],
    ['time: { hours: { from: "8am", to: "18:00" } }', /allow\.time\.hours\.from: expected HH:MM/],
    ['time: { weekdays: [monday] }', /allow\.time\.weekdays\[0\]: expected weekday/],
    ['time: { valid_until: "2026-03-01T10:00:00" }', /allow\.time\.valid_until: expected an ISO 8601/],
    ['auth_age: forever', /allow\.auth_age: expected a duration/],
    ['device: laptop', /allow\.device: expected none, registered or managed/],
    [
      'posture: { min_os_version: { macos: "fourteen" } }',
      /allow\.posture\.min_os_version\.macos: expected a dotted numeric version/,
    ],
    ['path: { prefix: /a, glob: "/b/*" }', /allow\.path: expected exactly one of prefix, glob, equals/],
    ['groups: { any: [] }', /allow\.groups\.any: expected at least one entry/],
    ['groups: { any: [a], all: [b] }', /allow\.groups: expected exactly one of any, all/],
    ['and: []', /allow\.and: /],
    ['path: { glob: "/**/x/**" }', /allow\.path\.glob: at most one \*\* per glob/],
    [
      'spiffe_id: { glob: ["spiffe://a/***"] }',
      /allow\.spiffe_id\.glob\[0\]: expected \* or \*\*, not \*\*\*/,
    ],
    ['not: { method: [GET] , bogus: 1 }', /allow\.not\.bogus: unknown field "bogus"/],
  ];
  for (const [condition, expected] of cases) {
    assert.match(
      errorOf(`${header}      - name: r\n        allow:\n          ${condition}\n`),
      expected,
      condition,
    );
  }
});

test('every problem in a file is reported, one per line', () => {
  const message = errorOf(
    `${header}      - name: r\n        allow: { method: GET, bogus: 1 }\n      - name: "bad name"\n        deny: true\n`,
  );
  const lines = message.split('\n');
  assert.equal(lines.length, 3, message);
  assert.ok(lines.every((line) => line.startsWith('policies.yaml:')));
});

test('cross-document errors name both places', () => {
  const a = parsePolicyText('policies:\n  - name: p\n    rules: []\n', 'a.yaml');
  const b = parsePolicyText('policies:\n  - name: x\n    rules: []\n  - name: p\n    rules: []\n', 'b.yaml');
  assert.throws(
    () => compilePolicies([a, b]),
    /^VigilError: b\.yaml:4 policies\[1\]\.name: policy "p" is already defined at a\.yaml:2/,
  );
  assert.throws(
    () => compilePolicies([parsePolicyText('routes:\n  - host: x.example\n    policy: nope\n', 'r.yaml')]),
    /r\.yaml:2 routes\[0\]\.policy: no policy named "nope"/,
  );
  assert.throws(
    () =>
      compilePolicies([
        parsePolicyText(
          `${header}      - { name: r, allow: true }\n      - { name: r, deny: true }\n`,
          'd.yaml',
        ),
      ]),
    /d\.yaml:5 policies\[0\]\.rules\[1\]\.name: duplicate rule name "r"/,
  );
  assert.throws(
    () =>
      compilePolicies([
        parsePolicyText(
          `${header}      - { name: r, allow: true }\nroutes:\n  - { host: a.example, path_prefix: /x/, policy: p }\n  - { host: a.example, path_prefix: /x, policy: p }\n`,
          'dup.yaml',
        ),
      ]),
    /dup\.yaml:7 routes\[1\]: route a\.example\/x is already declared at dup\.yaml:6 routes\[0\]/,
  );
});

test('an empty file is a valid document with nothing in it', () => {
  const document = parsePolicyText('', 'empty.yaml');
  assert.deepEqual(document.spec, { policies: [], routes: [] });
});

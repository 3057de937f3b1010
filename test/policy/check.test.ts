import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/internal/clock.ts';
import { checkPolicies, compilePolicies, type Finding, parsePolicyText } from '../../src/policy/index.ts';

function findings(rules: string, extra = 'routes:\n  - { host: a.example, policy: p }\n'): Finding[] {
  const text = `policies:\n  - name: p\n    rules:\n${rules}${extra}`;
  return checkPolicies([parsePolicyText(text, 'c.yaml')], { clock: new ManualClock(Date.UTC(2026, 5, 1)) });
}
const codes = (list: readonly Finding[]) =>
  list.map((finding) => `${finding.severity}:${finding.code}@${finding.location}`);

test('a clean policy set has no findings', () => {
  assert.deepEqual(findings('      - { name: sre, allow: { groups: { any: [sre] } } }\n'), []);
});

test('an allow under an unconditional deny is shadowed', () => {
  const list = findings(
    '      - { name: sre, allow: { groups: { any: [sre] } } }\n      - { name: nobody, deny: true }\n',
  );
  assert.deepEqual(codes(list), ['error:allow-shadowed@c.yaml:4']);
  assert.match(list[0]?.message ?? '', /unconditional deny rule "nobody"/);
});

test('an allow whose requests a broader deny always matches is shadowed', () => {
  const rules = [
    '      - name: contractors-admin',
    '        allow: { and: [ { groups: { any: [contractors] } }, { path: { prefix: /admin/users } }, { method: [GET] } ] }',
    '      - name: no-contractor-admin',
    '        deny: { and: [ { groups: { any: [contractors, vendors] } }, { path: { prefix: /admin } } ] }',
    '      - name: sre',
    '        allow: { groups: { any: [sre] } }',
    '',
  ].join('\n');
  assert.deepEqual(codes(findings(rules)), ['error:allow-shadowed@c.yaml:4']);
});

test('a rule that can never match is unreachable', () => {
  const rules = [
    '      - { name: get-and-post, allow: { and: [ { method: [GET] }, { method: [POST] } ] } }',
    '      - { name: both-ways, allow: { and: [ { groups: { any: [sre] } }, { not: { groups: { any: [sre] } } } ] } }',
    '      - { name: backwards, allow: { time: { valid_from: "2026-03-02", valid_until: "2026-03-01" } } }',
    '      - { name: fine, allow: { method: [GET] } }',
    '',
  ].join('\n');
  assert.deepEqual(codes(findings(rules)), [
    'error:unreachable-rule@c.yaml:4',
    'error:unreachable-rule@c.yaml:5',
    'error:unreachable-rule@c.yaml:6',
  ]);
});

test('expired grants, duplicates, unused policies and routes without a policy are reported', () => {
  const rules = [
    '      - { name: old, allow: { time: { valid_until: "2026-01-01" } } }',
    '      - { name: a, allow: { method: [GET] } }',
    '      - { name: b, allow: { method: [GET] } }',
    '  - name: unused',
    '    rules: [ { name: x, allow: true } ]',
    '',
  ].join('\n');
  const list = findings(
    rules,
    'routes:\n  - { host: a.example, policy: p }\n  - { host: b.example, policy: ghost }\n',
  );
  assert.deepEqual(codes(list), [
    'error:route-without-policy@c.yaml:11',
    'warning:expired-grant@c.yaml:4',
    'warning:duplicate-rule@c.yaml:6',
    'warning:unused-policy@c.yaml:7',
  ]);
});

test('a policy with no allow rule and a file with no routes are warned about', () => {
  const list = findings('      - { name: d, deny: { method: [DELETE] } }\n', '');
  assert.deepEqual(codes(list), [
    'warning:no-routes@c.yaml',
    'warning:unused-policy@c.yaml:2',
    'warning:no-allow-rule@c.yaml:2',
  ]);
});

test('a compiled set checks itself against the routes it was compiled with', () => {
  const document = parsePolicyText(
    'policies:\n  - name: p\n    rules: [ { name: sre, allow: { groups: { any: [sre] } } }, { name: all, deny: true } ]\n',
    'set.yaml',
  );
  const set = compilePolicies([document], {
    routes: [{ host: 'a.example', policy: 'p', source: 'vigil.yaml:3' }],
  });
  assert.deepEqual(codes(set.check()), ['error:allow-shadowed@set.yaml:3']);
});

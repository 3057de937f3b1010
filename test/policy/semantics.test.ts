import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePolicies, NO_ROUTE_DECISION, parsePolicyText, permits } from '../../src/policy/index.ts';
import { alice, HOST, NOW, policySet, request } from './helpers.ts';

const contractor = { id: 'carl', email: 'carl@agency.example', groups: ['contractors'] };

test('with no rule matching the request is denied with the failed conditions as reasons', () => {
  const set = policySet([
    { name: 'sre', allow: { groups: { any: ['sre'] } } },
    { name: 'get', allow: { method: ['GET'] } },
  ]);
  const decision = set.decide(request({ method: 'POST', user: contractor }));
  assert.deepEqual(decision, {
    effect: 'deny',
    rule: null,
    reasons: ['group-missing', 'method-denied'],
    mode: 'enforce',
    route: `${HOST}/`,
  });
});

test('a policy without allow rules denies with no-matching-rule', () => {
  const set = policySet([{ name: 'nobody', deny: { method: ['DELETE'] } }]);
  assert.deepEqual(set.decide(request()).reasons, ['no-matching-rule']);
});

test('a matching deny beats every allow', () => {
  const set = policySet([
    { name: 'everyone', allow: true },
    { name: 'staff', allow: { email_domain: ['agency.example'] } },
    {
      name: 'contractors-never-admin',
      deny: { and: [{ groups: { any: ['contractors'] } }, { path: { prefix: '/admin' } }] },
    },
  ]);
  const denied = set.decide(request({ path: '/admin/x', user: contractor }));
  assert.deepEqual(
    [denied.effect, denied.rule, denied.reasons],
    ['deny', 'contractors-never-admin', ['denied-by-rule']],
  );
  assert.equal(set.decide(request({ path: '/wiki', user: contractor })).effect, 'allow');
});

test('a deny whose attribute is missing fails closed and names what was missing', () => {
  const set = policySet([
    { name: 'everyone', allow: true },
    {
      name: 'contractors-never-admin',
      deny: { and: [{ groups: { any: ['contractors'] } }, { path: { prefix: '/admin' } }] },
    },
  ]);
  const anonymous = set.decide(request({ path: '/admin' }));
  assert.deepEqual(
    [anonymous.effect, anonymous.rule, anonymous.reasons],
    ['deny', 'contractors-never-admin', ['user-unauthenticated', 'denied-by-rule']],
  );
  assert.equal(
    set.decide(request({ path: '/wiki' })).effect,
    'allow',
    'a definitely false part keeps the deny off',
  );
});

test('missing attributes never satisfy an allow, not even through not', () => {
  const set = policySet([
    { name: 'not-contractor', allow: { not: { groups: { any: ['contractors'] } } } },
    { name: 'unmanaged-ok', allow: { not: { device: 'managed' } } },
    { name: 'either', allow: { or: [{ user: ['alice'] }, { not: { posture: { firewall: false } } }] } },
  ]);
  const anonymous = set.decide(request());
  assert.equal(anonymous.effect, 'deny');
  assert.ok(anonymous.reasons.includes('user-unauthenticated'));
  assert.equal(set.decide(request({ user: alice })).effect, 'allow');
  const excluded = policySet([{ name: 'r', allow: { not: { groups: { any: ['contractors'] } } } }]).decide(
    request({ user: contractor }),
  );
  assert.deepEqual(excluded.reasons, ['user-unauthorized']);
});

test('or holds when any branch holds and reports every branch when none does', () => {
  const set = policySet([
    { name: 'r', allow: { or: [{ groups: { any: ['sre'] } }, { device: 'managed' }] } },
  ]);
  assert.equal(set.decide(request({ user: alice })).effect, 'allow');
  assert.deepEqual(set.decide(request({ user: contractor })).reasons, ['group-missing', 'device-missing']);
});

test('several keys in one condition object must all hold', () => {
  const set = policySet([{ name: 'r', allow: { groups: { any: ['sre'] }, method: ['GET'] } }]);
  assert.equal(set.decide(request({ user: alice })).effect, 'allow');
  assert.deepEqual(set.decide(request({ user: alice, method: 'PUT' })).reasons, ['method-denied']);
});

test('an audit route reports the would-be decision and the caller lets it through', () => {
  const set = policySet([{ name: 'sre', allow: { groups: { any: ['sre'] } } }], 'audit');
  const decision = set.decide(request({ user: contractor }));
  assert.deepEqual([decision.effect, decision.mode], ['deny', 'audit']);
  assert.equal(permits(decision), true);
  assert.equal(
    permits(
      policySet([{ name: 'sre', allow: { groups: { any: ['sre'] } } }]).decide(request({ user: contractor })),
    ),
    false,
  );
});

test('a request for an unknown host or uncovered path has no route', () => {
  const set = compilePolicies([
    parsePolicyText(
      'policies: [{ name: p, rules: [{ name: all, allow: true }] }]\nroutes: [{ host: wiki.corp.example, path_prefix: /wiki/, policy: p }]',
      'r.yaml',
    ),
  ]);
  assert.equal(set.decide(request({ host: 'other.example' })), NO_ROUTE_DECISION);
  assert.deepEqual(set.decide(request({ host: 'wiki.corp.example', path: '/wikipedia' })).reasons, [
    'no-route',
  ]);
  assert.equal(set.decide(request({ host: 'wiki.corp.example', path: '/wiki' })).effect, 'allow');
  assert.equal(set.decide(request({ host: 'WIKI.corp.example:443', path: '/wiki/x' })).effect, 'allow');
});

test('the longest path prefix on a segment boundary picks the route', () => {
  const prefixes = ['/', '/a', '/a/b', '/a/b/c', '/d', '/e', '/f', '/g', '/h', '/i'];
  for (const count of [4, prefixes.length]) {
    const used = prefixes.slice(0, count);
    const text = [
      'policies:',
      ...used.map((_, index) => `  - { name: p${index}, rules: [{ name: r${index}, allow: true }] }`),
      'routes:',
      ...used.map((prefix, index) => `  - { host: h.example, path_prefix: "${prefix}", policy: p${index} }`),
    ].join('\n');
    const set = compilePolicies([parsePolicyText(text, 'routes.yaml')]);
    const ruleFor = (path: string) => set.decide(request({ host: 'h.example', path })).rule;
    assert.equal(ruleFor('/a/b/c/d'), 'r3', `${count} routes`);
    assert.equal(ruleFor('/a/b/cd'), 'r2', `${count} routes`);
    assert.equal(ruleFor('/a/b/'), 'r2', `${count} routes`);
    assert.equal(ruleFor('/ab'), 'r0', `${count} routes`);
    assert.equal(ruleFor('/'), 'r0', `${count} routes`);
  }
});

test('routes passed programmatically replace the routes in policy files', () => {
  const document = parsePolicyText(
    'policies: [{ name: p, rules: [{ name: all, allow: true }] }]\nroutes: [{ host: file.example, policy: p }]',
    'r.yaml',
  );
  const set = compilePolicies([document], {
    routes: [{ host: 'Config.Example', pathPrefix: '/app/', policy: 'p', mode: 'audit' }],
  });
  assert.deepEqual(set.decide(request({ host: 'file.example' })).reasons, ['no-route']);
  const decision = set.decide(request({ host: 'config.example', path: '/app/x' }));
  assert.deepEqual(
    [decision.effect, decision.mode, decision.route],
    ['allow', 'audit', 'config.example/app'],
  );
  assert.throws(
    () =>
      compilePolicies([document], { routes: [{ host: 'x', policy: 'missing', source: 'vigil.yaml:12' }] }),
    /vigil\.yaml:12\.policy: no policy named "missing"/,
  );
});

test('decisions are shared frozen objects, so the hot path allocates none', () => {
  const set = policySet([
    { name: 'sre', allow: { groups: { any: ['sre'] } } },
    { name: 'd', deny: { method: ['DELETE'] } },
  ]);
  const first = set.decide(request({ user: alice }));
  assert.equal(set.decide(request({ user: alice })), first);
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.reasons));
  assert.equal(set.decide(request({ user: contractor })), set.decide(request({ user: contractor })));
  assert.equal(
    set.decide(request({ method: 'DELETE' })),
    set.decide(request({ method: 'DELETE', user: alice })),
  );
  assert.throws(() => {
    (first.reasons as string[]).push('x');
  }, TypeError);
});

test('explain traces every rule and the conditions that failed', () => {
  const set = policySet([
    { name: 'staff', allow: { and: [{ email_domain: ['company.com'] }, { device: 'managed' }] } },
    { name: 'no-delete', deny: { method: ['DELETE'] } },
  ]);
  const decision = set.decide(request({ user: { ...alice, email: 'x@agency.example' }, now: NOW }), {
    explain: true,
  });
  assert.equal(decision.effect, 'deny');
  assert.deepEqual(decision.explain?.route, { host: HOST, pathPrefix: '/', policy: 'p', mode: 'enforce' });
  assert.deepEqual(decision.explain?.rules, [
    {
      rule: 'staff',
      effect: 'allow',
      matched: false,
      state: 'false',
      failed: [
        {
          path: 'allow.and[0].email_domain',
          condition: 'email_domain: ["company.com"]',
          state: 'false',
          reasons: ['user-unauthorized'],
        },
        {
          path: 'allow.and[1].device',
          condition: 'device: "managed"',
          state: 'unknown',
          reasons: ['device-missing'],
        },
      ],
    },
    {
      rule: 'no-delete',
      effect: 'deny',
      matched: false,
      state: 'false',
      failed: [
        { path: 'deny.method', condition: 'method: ["DELETE"]', state: 'false', reasons: ['method-denied'] },
      ],
    },
  ]);
  assert.equal(set.decide(request()).explain, undefined, 'no trace unless asked');
  assert.deepEqual(set.decide(request({ host: 'nowhere' }), { explain: true }).explain, {
    route: null,
    rules: [],
  });
});

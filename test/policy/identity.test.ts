import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alice, allowIf, NOW } from './helpers.ts';

test('a user condition allows the listed user ids only', () => {
  const decide = allowIf({ user: ['alice'] });
  assert.equal(decide({ user: alice }).effect, 'allow');
  const bob = decide({ user: { ...alice, id: 'bob' } });
  assert.deepEqual([bob.effect, bob.reasons], ['deny', ['user-unauthorized']]);
});

test('an anonymous request fails every identity condition with user-unauthenticated', () => {
  for (const condition of [
    { user: ['alice'] },
    { email: ['alice@company.com'] },
    { email_domain: ['company.com'] },
    { groups: { any: ['sre'] } },
    { claim: { path: 'dept', equals: 'eng' } },
    { mfa: true },
    { auth_age: '1h' },
    { authenticated: true },
  ]) {
    const decision = allowIf(condition)();
    assert.equal(decision.effect, 'deny', JSON.stringify(condition));
    assert.deepEqual(decision.reasons, ['user-unauthenticated'], JSON.stringify(condition));
  }
});

test('email matches case-insensitively and a missing email never matches', () => {
  const decide = allowIf({ email: ['Alice@Company.com'] });
  assert.equal(decide({ user: alice }).effect, 'allow');
  assert.equal(decide({ user: { ...alice, email: 'ALICE@company.COM' } }).effect, 'allow');
  assert.deepEqual(decide({ user: { id: 'alice', groups: [] } }).reasons, ['user-unauthorized']);
});

test('email_domain matches the whole domain after the last @, not a suffix of it', () => {
  const decide = allowIf({ email_domain: ['@company.com'] });
  assert.equal(decide({ user: alice }).effect, 'allow');
  assert.equal(decide({ user: { ...alice, email: 'x@COMPANY.com' } }).effect, 'allow');
  assert.equal(decide({ user: { ...alice, email: 'x@evilcompany.com' } }).effect, 'deny');
  assert.equal(decide({ user: { ...alice, email: 'x@sub.company.com' } }).effect, 'deny');
  assert.equal(decide({ user: { ...alice, email: 'company.com' } }).effect, 'deny');
  assert.equal(decide({ user: { ...alice, email: 'x@company.com@' } }).effect, 'deny');
});

test('groups.any needs one of the groups and groups.all needs every one', () => {
  const any = allowIf({ groups: { any: ['sre', 'admins'] } });
  const all = allowIf({ groups: { all: ['sre', 'engineering'] } });
  assert.equal(any({ user: alice }).effect, 'allow');
  assert.equal(all({ user: alice }).effect, 'allow');
  const partial = all({ user: { ...alice, groups: ['sre'] } });
  assert.deepEqual([partial.effect, partial.reasons], ['deny', ['group-missing']]);
});

test('a user with no groups fails every group condition', () => {
  const none = { ...alice, groups: [] };
  assert.deepEqual(allowIf({ groups: { any: ['sre'] } })({ user: none }).reasons, ['group-missing']);
  assert.deepEqual(allowIf({ groups: { all: ['sre'] } })({ user: none }).reasons, ['group-missing']);
});

test('a claim condition reads dotted paths, arrays and scalars', () => {
  const claims = { org: { department: 'eng', level: 3 }, roles: ['viewer', 'editor'], verified: true };
  const user = { ...alice, claims };
  assert.equal(allowIf({ claim: { path: 'org.department', equals: 'eng' } })({ user }).effect, 'allow');
  assert.equal(allowIf({ claim: { path: 'org.level', in: [2, 3] } })({ user }).effect, 'allow');
  assert.equal(allowIf({ claim: { path: 'roles', equals: 'editor' } })({ user }).effect, 'allow');
  assert.equal(allowIf({ claim: { path: 'verified', equals: true } })({ user }).effect, 'allow');
  assert.deepEqual(allowIf({ claim: { path: 'org.department', equals: 'sales' } })({ user }).reasons, [
    'claim-mismatch',
  ]);
});

test('a missing claim never matches an allow and never throws', () => {
  const decide = allowIf({ claim: { path: 'org.department.name', equals: 'eng' } });
  for (const claims of [undefined, {}, { org: null }, { org: 'flat' }, { org: { department: ['eng'] } }]) {
    const decision = decide({ user: { ...alice, claims: claims as Record<string, unknown> | undefined } });
    assert.deepEqual([decision.effect, decision.reasons], ['deny', ['claim-mismatch']]);
  }
  const negated = allowIf({ not: { claim: { path: 'contractor', equals: true } } });
  assert.equal(negated({ user: alice }).effect, 'deny', 'not of an unknown claim is still unknown');
  assert.equal(negated({ user: { ...alice, claims: { contractor: false } } }).effect, 'allow');
});

test('mfa requires "mfa" in amr and amr.any/all check the listed methods', () => {
  const decide = allowIf({ mfa: true });
  assert.equal(decide({ user: { ...alice, amr: ['pwd', 'mfa'] } }).effect, 'allow');
  assert.deepEqual(decide({ user: { ...alice, amr: ['pwd'] } }).reasons, ['mfa-required']);
  assert.deepEqual(decide({ user: alice }).reasons, ['mfa-required']);
  const hardware = allowIf({ amr: { all: ['hwk', 'pin'] } });
  assert.equal(hardware({ user: { ...alice, amr: ['hwk', 'pin'] } }).effect, 'allow');
  assert.equal(hardware({ user: { ...alice, amr: ['hwk'] } }).effect, 'deny');
});

test('auth_age denies logins older than the limit and logins of unknown age', () => {
  const decide = allowIf({ auth_age: '12h' });
  assert.equal(decide({ user: { ...alice, authTime: NOW - 12 * 3_600_000 } }).effect, 'allow');
  assert.deepEqual(decide({ user: { ...alice, authTime: NOW - 12 * 3_600_000 - 1 } }).reasons, [
    'auth-too-old',
  ]);
  assert.deepEqual(decide({ user: alice }).reasons, ['auth-too-old']);
});

test('authenticated holds for any user, with or without groups', () => {
  const decide = allowIf({ authenticated: true });
  assert.equal(decide({ user: { id: 'x', groups: [] } }).effect, 'allow');
  assert.deepEqual(decide().reasons, ['user-unauthenticated']);
});

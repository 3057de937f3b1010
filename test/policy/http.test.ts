import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowIf, denyIf } from './helpers.ts';

test('method matches the listed methods, written in any case', () => {
  const decide = allowIf({ method: ['get', 'HEAD'] });
  assert.equal(decide({ method: 'GET' }).effect, 'allow');
  assert.equal(decide({ method: 'HEAD' }).effect, 'allow');
  assert.deepEqual(decide({ method: 'POST' }).reasons, ['method-denied']);
});

test('path prefix is a plain string prefix', () => {
  const deny = denyIf({ path: { prefix: '/admin' } });
  assert.equal(deny({ path: '/admin' }).effect, 'deny');
  assert.equal(deny({ path: '/admin/users' }).effect, 'deny');
  assert.equal(deny({ path: '/administrator' }).effect, 'deny');
  assert.equal(deny({ path: '/Admin' }).effect, 'allow', 'paths are case-sensitive');
  assert.equal(deny({ path: '/wiki/admin' }).effect, 'allow');
  const folder = allowIf({ path: { prefix: ['/docs/', '/help/'] } });
  assert.equal(folder({ path: '/docs/x' }).effect, 'allow');
  assert.equal(folder({ path: '/docs' }).effect, 'deny');
});

test('path equals matches whole paths only', () => {
  const decide = allowIf({ path: { equals: ['/payments', '/'] } });
  assert.equal(decide({ path: '/payments' }).effect, 'allow');
  assert.equal(decide({ path: '/' }).effect, 'allow');
  assert.deepEqual(decide({ path: '/payments/' }).reasons, ['path-denied']);
});

test('a path glob star stays inside one segment and a double star crosses segments', () => {
  const one = allowIf({ path: { glob: '/api/*/users' } });
  assert.equal(one({ path: '/api/v1/users' }).effect, 'allow');
  assert.equal(one({ path: '/api//users' }).effect, 'allow', 'a star may match an empty segment');
  assert.equal(one({ path: '/api/v1/v2/users' }).effect, 'deny');
  assert.equal(one({ path: '/api/v1/users/42' }).effect, 'deny');
  const deep = allowIf({ path: { glob: '/static/**' } });
  assert.equal(deep({ path: '/static/a/b/c.js' }).effect, 'allow');
  assert.equal(deep({ path: '/static/' }).effect, 'allow');
  assert.equal(deep({ path: '/static' }).effect, 'deny');
  const single = allowIf({ path: { glob: '/v?/x' } });
  assert.equal(single({ path: '/v1/x' }).effect, 'allow');
  assert.equal(single({ path: '/v//x' }).effect, 'deny');
  assert.equal(single({ path: '/v10/x' }).effect, 'deny');
});

test('glob metacharacters other than * and ? are literal', () => {
  const decide = allowIf({ path: { glob: '/a.b/(x)+[y]/$' } });
  assert.equal(decide({ path: '/a.b/(x)+[y]/$' }).effect, 'allow');
  assert.equal(decide({ path: '/aXb/(x)+[y]/$' }).effect, 'deny');
  assert.equal(decide({ path: '/a.b/xx[y]/$' }).effect, 'deny');
  const newline = allowIf({ path: { glob: '/a/*' } });
  assert.equal(newline({ path: '/a/x\n/b' }).effect, 'deny');
});

test('header equals compares the value exactly and a missing header never matches', () => {
  const decide = allowIf({ header: { name: 'X-Team', equals: 'payments' } });
  assert.equal(decide({ headers: { 'x-team': 'payments' } }).effect, 'allow');
  assert.deepEqual(decide({ headers: { 'x-team': 'Payments' } }).reasons, ['header-mismatch']);
  assert.deepEqual(decide({}).reasons, ['header-mismatch']);
  assert.equal(
    allowIf({ header: { name: 'x-env', in: ['dev', 'staging'] } })({ headers: { 'x-env': 'staging' } })
      .effect,
    'allow',
  );
});

test('header names in a policy are case-insensitive', () => {
  const decide = allowIf({ header: { name: 'X-Forwarded-Proto', equals: 'https' } });
  assert.equal(decide({ headers: { 'x-forwarded-proto': 'https' } }).effect, 'allow');
  assert.equal(decide({ headers: { 'x-forwarded-proto': undefined } }).effect, 'deny');
});

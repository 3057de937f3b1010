import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { normalizePath, normalizeTarget } from '../../src/proxy/path.ts';

function pathOf(target: string): string {
  const result = normalizeTarget(target);
  assert.ok('path' in result, `${target} was refused: ${JSON.stringify(result)}`);
  return result.path;
}

function problemOf(target: string): string {
  const result = normalizeTarget(target);
  assert.ok('problem' in result, `${target} was accepted as ${JSON.stringify(result)}`);
  return result.problem;
}

describe('request target normalization', () => {
  it('resolves dot segments and merges duplicate slashes', () => {
    assert.equal(pathOf('/a/./b/../c'), '/a/c');
    assert.equal(pathOf('//admin'), '/admin');
    assert.equal(pathOf('/public//..//admin/'), '/admin/');
    assert.equal(pathOf('/a/b/..'), '/a/');
    assert.equal(pathOf('/a/.'), '/a/');
    assert.equal(pathOf('/'), '/');
  });

  it('decodes unreserved characters once and keeps the query untouched', () => {
    assert.equal(pathOf('/%61dmin'), '/admin');
    assert.equal(pathOf('/caf%c3%a9'), '/caf%C3%A9');
    assert.deepEqual(normalizeTarget('/search?q=%2e%2e%2fetc&x=1'), {
      path: '/search',
      search: '?q=%2e%2e%2fetc&x=1',
    });
  });

  it('refuses targets that different parsers read differently', () => {
    assert.equal(problemOf('/%2e%2e/admin'), 'encoded-dot-segment');
    assert.equal(problemOf('/public/%2e%2e/admin'), 'encoded-dot-segment');
    assert.equal(problemOf('/public/.%2e/admin'), 'encoded-dot-segment');
    assert.equal(problemOf('/public%2f..%2fadmin'), 'encoded-slash');
    assert.equal(problemOf('/public/%252e%252e/admin'), 'double-encoding');
    assert.equal(problemOf('/public\\..\\admin'), 'backslash');
    assert.equal(problemOf('/public/%5c../admin'), 'encoded-backslash');
    assert.equal(problemOf('/admin%00.png'), 'nul');
    assert.equal(problemOf('/public/..;/admin'), 'path-parameter');
    assert.equal(problemOf('/admin;jsessionid=1'), 'path-parameter');
    assert.equal(problemOf('/admin%3bx'), 'path-parameter');
    assert.equal(problemOf('/admin#/users'), 'fragment');
    assert.equal(problemOf('/public?x#/../admin'), 'fragment');
    assert.equal(problemOf('/./.vigil/jwks.json'), 'reserved-path');
    assert.equal(problemOf('//.vigil/auth'), 'reserved-path');
    assert.equal(problemOf('/a%zz'), 'bad-percent-encoding');
    assert.equal(problemOf('/a%2'), 'bad-percent-encoding');
    assert.equal(problemOf('/../etc/passwd'), 'escapes-root');
    assert.equal(problemOf('http://admin.corp.example/admin'), 'not-origin-form');
    assert.equal(problemOf('*'), 'not-origin-form');
    assert.equal(problemOf('/a\tb'), 'control-character');
    assert.equal(problemOf(`/${'a'.repeat(9000)}`), 'too-long');
  });

  it('keeps a dot that is part of a name', () => {
    assert.equal(pathOf('/file%2ejson'), '/file.json');
    assert.equal(pathOf('/.well-known/x'), '/.well-known/x');
    assert.equal(pathOf('/a..b'), '/a..b');
  });

  it('gives every path the fast path takes exactly what the full normalization gives', () => {
    const tricky = fc.constantFrom(
      '/',
      '.',
      'a',
      'Z',
      '0',
      '-',
      '~',
      '%',
      '2',
      'e',
      'f',
      ';',
      '\\',
      '\u0001',
      ' ',
      'é',
      '@',
    );
    fc.assert(
      fc.property(fc.array(tricky, { maxLength: 24 }), (chars) => {
        const path = `/${chars.join('')}`;
        const full = normalizePath(path);
        const result = normalizeTarget(path);
        assert.deepEqual('problem' in result ? result : result.path, full);
      }),
      { numRuns: 5000 },
    );
  });
});

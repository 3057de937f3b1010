import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { constantTimeEqual, readOrCreateSecretFile } from '../../src/internal/secrets.ts';
import { tempDir } from '../support/tmp.ts';

describe('secret files', () => {
  it('creates a missing secret once, owner-only, and returns the same one after', () => {
    const path = join(tempDir(), 'nested', 'token');
    let made = 0;
    const create = () => `secret-${++made}`;
    assert.equal(readOrCreateSecretFile(path, create), 'secret-1');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readOrCreateSecretFile(path, create), 'secret-1');
    assert.equal(made, 1);
  });

  it('refuses a secret readable by others, saying how to fix it, and never overwrites it', () => {
    const path = join(tempDir(), 'token');
    writeFileSync(path, 'kept\n');
    chmodSync(path, 0o644);
    assert.throws(
      () => readOrCreateSecretFile(path, () => 'new'),
      /readable by group or others \(mode 0644\); run chmod 600/,
    );
    assert.equal(readFileSync(path, 'utf8'), 'kept\n');
  });

  it('refuses an empty secret file rather than replacing it', () => {
    const path = join(tempDir(), 'token');
    writeFileSync(path, '', { mode: 0o600 });
    assert.throws(() => readOrCreateSecretFile(path, () => 'new'), /is empty/);
  });

  it('compares secrets of any length without throwing', () => {
    assert.equal(constantTimeEqual('abc', 'abc'), true);
    assert.equal(constantTimeEqual('abc', 'abcd'), false);
    assert.equal(constantTimeEqual('', 'x'), false);
  });
});

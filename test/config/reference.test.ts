import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { configReferenceMarkdown, parseConfig } from '../../src/config/index.ts';

describe('configuration reference', () => {
  it('docs/configuration.md matches the schema (run npm run docs:config after a schema change)', () => {
    const committed = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    assert.equal(committed, configReferenceMarkdown());
  });

  it('lists every key the loader accepts', () => {
    const reference = configReferenceMarkdown();
    for (const key of ['server.proxy_listen', 'database.url', 'admin.token_file', 'routes[].mode']) {
      assert.match(reference, new RegExp(`\\| \`${key.replace(/[.[\]]/g, '\\$&')}\` \\|`));
    }
  });

  it('resolves the default data dir against the config file folder', () => {
    const { config } = parseConfig('', 'vigil.yaml', {}, '/etc/vigil');
    assert.equal(config.server.data_dir, join('/etc/vigil', '.vigil-data'));
  });
});

describe('error codes', () => {
  it('every code of the VigilErrorCode union is documented in docs/errors.md', () => {
    const source = readFileSync(new URL('../../src/errors.ts', import.meta.url), 'utf8');
    const union = source.slice(
      source.indexOf('export type VigilErrorCode'),
      source.indexOf(';', source.indexOf('export type VigilErrorCode')),
    );
    const codes = [...union.matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((match) => match[1]);
    assert.ok(codes.length > 20);
    const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    assert.deepEqual(
      codes.filter((code) => !docs.includes(`\`${code}\``)),
      [],
    );
  });
});

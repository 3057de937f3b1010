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

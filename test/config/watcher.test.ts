import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigWatcher, type LoadedConfig, loadConfig } from '../../src/config/index.ts';
import { tempDir } from '../support/tmp.ts';

const GOOD = 'log:\n  level: info\n';
const BETTER = 'log:\n  level: debug\n';
const BAD = 'log:\n  level: loud\n';

function setup(): { path: string; watcher: ConfigWatcher; changes: EventEmitter } {
  const path = join(tempDir(), 'vigil.yaml');
  writeFileSync(path, GOOD);
  const watcher = new ConfigWatcher(loadConfig(path, {}), { env: {}, debounceMs: 20 });
  const changes = new EventEmitter();
  watcher.onChange((config) => changes.emit('change', config));
  return { path, watcher, changes };
}

describe('config hot reload', () => {
  it('a bad file is reported and the last good config keeps serving', () => {
    const { path, watcher } = setup();
    writeFileSync(path, BAD);
    const result = watcher.reload();
    assert.ok('error' in result);
    assert.match(result.error.message, /vigil\.yaml:2 log\.level: Invalid option/);
    assert.equal(watcher.current.config.log.level, 'info');
  });

  it('a good file replaces the config and notifies subscribers once', () => {
    const { path, watcher } = setup();
    const seen: LoadedConfig[] = [];
    watcher.onChange((config) => seen.push(config));
    writeFileSync(path, BETTER);
    assert.ok('changed' in watcher.reload() && watcher.current.config.log.level === 'debug');
    assert.ok('changed' in watcher.reload());
    assert.equal(seen.length, 1, 'an unchanged file does not notify again');
  });

  it('reloads when the file changes on disk', async () => {
    const { path, watcher, changes } = setup();
    watcher.start();
    try {
      const changed = once(changes, 'change', { signal: AbortSignal.timeout(5000) });
      writeFileSync(path, BETTER);
      const [config] = (await changed) as [LoadedConfig];
      assert.equal(config.config.log.level, 'debug');
    } finally {
      watcher.stop();
    }
  });

  it('reloads on SIGHUP, and ignores a bad file written before it', async () => {
    const { path, watcher, changes } = setup();
    watcher.start();
    try {
      writeFileSync(path, BAD);
      process.kill(process.pid, 'SIGHUP');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(watcher.current.config.log.level, 'info');
      const changed = once(changes, 'change', { signal: AbortSignal.timeout(5000) });
      writeFileSync(path, BETTER);
      process.kill(process.pid, 'SIGHUP');
      await changed;
      assert.equal(watcher.current.config.log.level, 'debug');
    } finally {
      watcher.stop();
    }
  });
});

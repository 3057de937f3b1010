import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { startServer } from '../../src/server/index.ts';
import { createLogger } from '../../src/telemetry/index.ts';
import { tempDir } from '../support/tmp.ts';

/** Handles that keep a process alive, by kind (timers, watchers, sockets, servers). */
function openHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/**
 * Timers, watchers and sockets created since, still alive: unref'd timers too, which
 * getActiveResourcesInfo leaves out (every background timer in src is unref'd).
 */
function tracking(): { alive: () => string[]; created: () => void; stop: () => void } {
  const live = new Map<number, string>();
  const watched = /^(Timeout|FSEVENTWRAP|STATWATCHER|TCPWRAP|TCPSERVERWRAP|PIPEWRAP)$/;
  // Created while the start runs; ended any time until stop (the test's own wait is not counted).
  let recording = true;
  const hook = createHook({
    init(id, type) {
      if (recording && watched.test(type)) live.set(id, type);
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  return {
    alive: () => [...live.values()].sort(),
    created: () => {
      recording = false;
    },
    stop: () => hook.disable(),
  };
}

async function settled(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 200));
}

function writeConfig(dir: string, extra: string): string {
  const path = join(dir, 'vigil.yaml');
  writeFileSync(
    path,
    `server:\n  proxy_listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(dir, 'data')}\nlog: { format: json }\n${extra}`,
  );
  return path;
}

describe('a server that cannot start', () => {
  it('leaves nothing open when a late step fails (a CA never initialized, a proxy port taken)', async () => {
    const logger = createLogger({ level: 'fatal', format: 'json' });
    const before = openHandles();

    const dir = tempDir();
    const keyFile = join(dir, 'ca.key');
    writeFileSync(keyFile, `${'a'.repeat(43)}\n`, { mode: 0o600 });
    const withCa = loadConfig(writeConfig(dir, `ca:\n  key_file: ${keyFile}\n`));
    const started = tracking();
    await assert.rejects(startServer(withCa, { watchConfig: true, logger }));
    started.created();
    await settled();
    started.stop();
    assert.deepEqual(openHandles(), before, 'after the CA failed');
    assert.deepEqual(started.alive(), [], 'timers, watchers and sockets the failed start left');

    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    const other = tempDir();
    const path = writeConfig(other, '');
    writeFileSync(
      path,
      `${'server:\n'}  proxy_listen: 127.0.0.1:${port}\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(other, 'data')}\nlog: { format: json }\n`,
    );
    const late = tracking();
    await assert.rejects(
      startServer(loadConfig(path), { watchConfig: true, logger }),
      /in use|EADDRINUSE|taken/i,
    );
    late.created();
    taken.close();
    await settled();
    late.stop();
    assert.deepEqual(openHandles(), before, 'after the proxy listener failed');
    assert.deepEqual(late.alive(), [], 'timers, watchers and sockets the failed start left');
  });
});

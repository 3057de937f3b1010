import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { loadConfig } from '../../src/config/index.ts';
import { startServer } from '../../src/server/index.ts';
import { createLogger } from '../../src/telemetry/index.ts';
import { tempDir } from '../support/tmp.ts';
import { startEchoSocketServer } from '../support/websocket.ts';

describe('shutdown', () => {
  it('ends within shutdown_timeout although a WebSocket is open, closing it', async () => {
    const upstream = await startEchoSocketServer();
    const dir = tempDir();
    writeFileSync(
      join(dir, 'policy.yaml'),
      'policies:\n  - name: open\n    rules:\n      - name: reads\n        allow: { method: [GET] }\n',
    );
    writeFileSync(
      join(dir, 'vigil.yaml'),
      `server:\n  proxy_listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(dir, 'data')}\n  shutdown_timeout: 1s\nlog: { format: json }\npolicy_files: [policy.yaml]\nroutes:\n  - name: live\n    from: http://app.test\n    to: ${upstream}\n    policy: open\n`,
    );
    const server = await startServer(loadConfig(join(dir, 'vigil.yaml')), {
      logger: createLogger({ level: 'fatal', format: 'json' }),
    });
    const client = new WebSocket(`${server.proxyUrl.replace('http', 'ws')}/live`, {
      headers: { host: 'app.test' },
    });
    await once(client, 'open', { signal: AbortSignal.timeout(5000) });
    const clientClosed = once(client, 'close', { signal: AbortSignal.timeout(10_000) });
    const outcome = await Promise.race([
      server.close().then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still closing after 5 s'), 5000).unref()),
    ]);
    assert.equal(outcome, 'closed');
    await clientClosed;
  });
});

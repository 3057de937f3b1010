import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { spawnServer, writeProxyConfig } from '../support/cli.ts';
import { Browser, freePort } from '../support/cookie-jar.ts';
import { tempDir } from '../support/tmp.ts';

/** An upstream that answers /slow after 1.5 s and pauses /stream 1.5 s after its first chunk. */
async function startSlowUpstream(): Promise<string> {
  const server = createServer((request, response) => {
    if (request.url?.endsWith('/slow')) {
      setTimeout(() => response.end('late'), 1500);
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.write('first ');
    setTimeout(() => response.end('second'), 1500);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('route timeouts', () => {
  it("routes[].timeout and idle_timeout bound the upstream's answer; defaults leave a slow one alone", async () => {
    const dir = tempDir();
    const port = await freePort();
    const proxy = `http://127.0.0.1:${port}`;
    const upstream = await startSlowUpstream();
    const config = writeProxyConfig(
      dir,
      port,
      `  - name: strict
    from: ${proxy}/strict
    to: ${upstream}
    policy: eng
    timeout: 500ms
    idle_timeout: 500ms
  - name: relaxed
    from: ${proxy}/
    to: ${upstream}
    policy: eng
`,
    );
    const server = await spawnServer(config);
    try {
      const alice = new Browser();
      await alice.login(`${proxy}/.vigil/login?rd=/.vigil/whoami`, 'alice');
      const late = await alice.request(`${proxy}/strict/slow`);
      assert.equal(late.status, 504);
      // The answer started, so its status stays; the pause past idle_timeout cuts the body.
      const cut = await alice.request(`${proxy}/strict/stream`).then(
        (answer) => answer.body,
        (error: unknown) => `failed: ${String(error)}`,
      );
      assert.notEqual(cut, 'first second');
      assert.equal((await alice.request(`${proxy}/slow`)).body, 'late');
      assert.equal((await alice.request(`${proxy}/stream`)).body, 'first second');
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

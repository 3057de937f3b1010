import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { runCli, spawnServer, writeProxyConfig } from '../support/cli.ts';
import { Browser, freePort } from '../support/cookie-jar.ts';
import { tempDir } from '../support/tmp.ts';
import { startEchoSocketServer } from '../support/websocket.ts';

describe('WebSocket through a real vigil server', () => {
  it('an admin revoking the session closes the open socket within the revocation window', async () => {
    const upstream = await startEchoSocketServer();
    const dir = tempDir();
    const port = await freePort();
    const proxyUrl = `http://127.0.0.1:${port}`;
    const config = writeProxyConfig(
      dir,
      port,
      `  - name: live
    from: ${proxyUrl}/live
    to: ${upstream}
    policy: eng
`,
    );
    const server = await spawnServer(config);
    try {
      const alice = new Browser();
      const landed = await alice.login(`${proxyUrl}/.vigil/login?rd=/.vigil/whoami`, 'alice');
      assert.ok(landed.status < 500, `login landed with ${landed.status}`);
      const cookie = alice.jar.header(new URL(proxyUrl)) ?? '';
      const whoami = JSON.parse((await alice.request(`${proxyUrl}/.vigil/whoami`)).body) as {
        session_id: string;
      };

      assert.match(cookie, /_vigil_session=/, 'logged in');
      const socket = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers: { cookie } });
      socket.on('unexpected-response', (_request, response) =>
        assert.fail(`upgrade refused: ${response.statusCode}`),
      );
      await once(socket, 'open', { signal: AbortSignal.timeout(5000) });
      socket.send('hi');
      const [reply] = (await once(socket, 'message', { signal: AbortSignal.timeout(5000) })) as [Buffer];
      assert.equal(String(reply), 'echo hi');

      const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
      const closed = once(socket, 'close', { signal: AbortSignal.timeout(2000) });
      const revoked = await fetch(`${server.adminUrl}/api/v1/sessions/${whoami.session_id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(revoked.status, 200);
      await closed;

      const again = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers: { cookie } });
      const [, response] = (await once(again, 'unexpected-response', {
        signal: AbortSignal.timeout(5000),
      })) as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, 401, 'the revoked session cannot open a new socket');
      again.on('error', () => {});
      again.terminate();
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
    // The login and the revocation are admin events in the audit log.
    const admin = await runCli([
      'audit',
      'query',
      '--database',
      `sqlite://${join(dir, 'data', 'vigil.db')}`,
      '--kind',
      'admin',
      '--json',
    ]);
    assert.equal(admin.code, 0, admin.stderr);
    const actions = (JSON.parse(admin.stdout) as { action: string }[]).map((event) => event.action);
    assert.ok(actions.includes('session.created'), actions.join(','));
    assert.ok(actions.includes('session.revoked'), actions.join(','));
  });
});

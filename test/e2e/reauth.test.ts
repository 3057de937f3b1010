import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnServer, writeProxyConfig } from '../support/cli.ts';
import { Browser, freePort } from '../support/cookie-jar.ts';
import { tempDir } from '../support/tmp.ts';

describe('sign-in frequency through the proxy', () => {
  it("a route's reauth_after sends a session whose login is older back to login; other routes still accept it", async () => {
    const dir = tempDir();
    const port = await freePort();
    const proxy = `http://127.0.0.1:${port}`;
    // Upstreams on a closed port: 502 proves the request was allowed through.
    const config = writeProxyConfig(
      dir,
      port,
      `  - name: sensitive
    from: ${proxy}/sensitive
    to: http://127.0.0.1:1
    policy: eng
    reauth_after: 4s
  - name: everyday
    from: ${proxy}/everyday
    to: http://127.0.0.1:1
    policy: eng
`,
    );
    const server = await spawnServer(config);
    try {
      const alice = new Browser();
      await alice.login(`${proxy}/.vigil/login?rd=/.vigil/whoami`, 'alice');
      assert.equal((await alice.request(`${proxy}/sensitive/`)).status, 502, 'fresh login: allowed');
      // The sign-in frequency is measured in whole seconds by the IdP's auth_time (rounded
      // down), so a login may already be almost a second old when it lands: the window
      // leaves the first request 3 s, on a loaded machine too, and the wait goes past it.
      await new Promise((resolve) => setTimeout(resolve, 5100));
      const stale = await alice.request(`${proxy}/sensitive/`);
      assert.equal(stale.status, 302);
      assert.match(stale.response.headers.get('location') ?? '', /\/\.vigil\/login/);
      assert.equal((await alice.request(`${proxy}/everyday/`)).status, 502, 'no reauth_after: still allowed');
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

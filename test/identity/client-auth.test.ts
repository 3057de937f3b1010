import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/index.ts';
import { createIdentity, type IdentityService, startDevIdp } from '../../src/identity/index.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../../src/telemetry/index.ts';
import { Browser } from '../support/cookie-jar.ts';
import { tempDir } from '../support/tmp.ts';

describe('token endpoint client authentication', () => {
  it('logs in with client_secret_post and with private_key_jwt', async () => {
    const dir = tempDir();
    let identity: IdentityService | undefined;
    const proxy: Server = createServer((request, response) => {
      void identity?.handle(request, response, { secure: false }).then((handled) => {
        if (!handled) response.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const redirect = [`${proxyUrl}/.vigil/callback`];

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = join(dir, 'client.key');
    writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const secretFile = join(dir, 'client.secret');
    writeFileSync(secretFile, 'post-secret\n', { mode: 0o600 });

    const idp = await startDevIdp({
      host: '127.0.0.1',
      port: 0,
      name: 'keys',
      clients: [
        {
          client_id: 'by-post',
          client_secret: 'post-secret',
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: redirect,
        },
        {
          client_id: 'by-key',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' }] },
          redirect_uris: redirect,
        },
      ],
      logger: silentLogger(),
    });
    const store = await openStore(`sqlite://${join(dir, 'vigil.db')}`);
    after(async () => {
      await identity?.close();
      await store.close();
      await idp.close();
      proxy.close();
    });
    const { config } = parseConfig(
      `identity_providers:
  - name: post
    issuer: ${idp.issuer}
    client_id: by-post
    client_secret_file: ${secretFile}
    token_endpoint_auth_method: client_secret_post
  - name: key
    issuer: ${idp.issuer}
    client_id: by-key
    private_key_file: ${keyFile}
    token_endpoint_auth_method: private_key_jwt
`,
      'vigil.yaml',
      {},
      dir,
    );
    // Two clients of one IdP: both can log users in; bearer tokens go by the first.
    identity = await createIdentity({ config, store, logger: silentLogger(), dataDir: join(dir, 'data') });

    for (const [name, user] of [
      ['post', 'bob'],
      ['key', 'carol'],
    ] as const) {
      const browser = new Browser();
      const end = await browser.login(`${proxyUrl}/.vigil/login?idp=${name}&rd=/done`, user);
      assert.equal(end.url.pathname, '/done', `${name}: ${end.body}`);
      const me = JSON.parse((await browser.request(`${proxyUrl}/.vigil/whoami`)).body) as { user_id: string };
      assert.equal(me.user_id, `${name}:${user}`);
    }
  });
});

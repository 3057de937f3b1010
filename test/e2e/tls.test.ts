import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnServer } from '../support/cli.ts';
import { freePort } from '../support/cookie-jar.ts';
import { certificates } from '../support/tls.ts';
import { tempDir } from '../support/tmp.ts';

describe('TLS on the proxy listener and to upstreams', () => {
  it('serves HTTPS, redirects HTTP for route hosts, and verifies a private-CA upstream', async () => {
    const dir = tempDir();
    const files = certificates(dir);
    const upstream = createHttpsServer(
      { cert: readFileSync(files.cert), key: readFileSync(files.key) },
      (request, response) => {
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end(`tls upstream saw ${request.url}`);
      },
    );
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    after(() => upstream.close());
    const upstreamPort = (upstream.address() as AddressInfo).port;
    writeFileSync(
      join(dir, 'policy.yaml'),
      'policies:\n  - name: loopback\n    rules:\n      - name: from-here\n        allow: { source_ip: [127.0.0.0/8] }\n',
    );
    const redirectPort = await freePort();
    const config = join(dir, 'vigil.yaml');
    writeFileSync(
      config,
      `server:
  proxy_listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
  http_redirect_listen: 127.0.0.1:${redirectPort}
  tls:
    cert_file: ${files.cert}
    key_file: ${files.key}
log: { format: json }
policy_files: [policy.yaml]
routes:
  - name: app
    from: https://app.test
    to: https://127.0.0.1:${upstreamPort}
    tls_ca_file: ${files.ca}
    policy: loopback
`,
    );
    const server = await spawnServer(config);
    try {
      assert.match(server.proxyUrl, /^https:/);
      const port = Number(new URL(server.proxyUrl).port);
      const body = await new Promise<string>((resolve, reject) => {
        const request = httpsRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/hello?x=1',
            servername: 'app.test',
            headers: { host: 'app.test' },
            ca: readFileSync(files.ca),
          },
          (response) => {
            let text = '';
            response.on('data', (chunk: Buffer) => {
              text += chunk.toString();
            });
            response.on('end', () => resolve(`${response.statusCode} ${text}`));
          },
        );
        request.on('error', reject);
        request.end();
      });
      assert.equal(body, '200 tls upstream saw /hello?x=1');

      const redirected = await new Promise<{ status: number; location?: string }>((resolve, reject) => {
        const request = httpRequest(
          { host: '127.0.0.1', port: redirectPort, path: '/a?b=1', headers: { host: 'app.test' } },
          (response) => {
            response.resume();
            resolve({ status: response.statusCode ?? 0, location: response.headers.location });
          },
        );
        request.on('error', reject);
        request.end();
      });
      assert.deepEqual(redirected, { status: 308, location: `https://app.test:${port}/a?b=1` });

      const unknownHost = await new Promise<number>((resolve, reject) => {
        const request = httpRequest(
          { host: '127.0.0.1', port: redirectPort, path: '/', headers: { host: 'evil.test' } },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        request.on('error', reject);
        request.end();
      });
      assert.equal(unknownHost, 404, 'no redirect for hosts Vigil does not serve');
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

// Child processes for bench/proxy.ts: the upstream and the bare pass-through baseline.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const [role, target] = process.argv.slice(2);
// Exit normally on the bench's SIGTERM, so that --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
const BODY = Buffer.from('{"ok":true,"service":"bench-upstream"}');

if (role === 'upstream') {
  const server = createServer({ keepAliveTimeout: 60_000 }, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
    response.end(BODY);
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
} else if (role === 'passthrough' && target) {
  // The fastest plain Node proxy we know how to write: no auth, keep-alive pool.
  const pool = new Pool(target, { connections: 64, pipelining: 1 });
  const server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
    pool
      .request({
        path: request.url ?? '/',
        method: (request.method ?? 'GET') as 'GET',
        headers: { host: 'upstream' },
      })
      .then(async (upstream) => {
        response.writeHead(upstream.statusCode, upstream.headers as Record<string, string>);
        upstream.body.on('error', () => response.destroy());
        upstream.body.pipe(response);
      })
      .catch(() => {
        response.statusCode = 502;
        response.end();
      });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
} else {
  process.stderr.write('usage: _proxy-children.ts upstream | passthrough URL\n');
  process.exit(2);
}

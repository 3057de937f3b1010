import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import type { Clock } from '../../src/internal/clock.ts';
import { compilePolicies, parsePolicyText } from '../../src/policy/index.ts';
import {
  type AccessLimiter,
  AccessProxy,
  AssertionSigner,
  type ProxyDecisionRecord,
  type RequestIdentity,
  UpstreamGroup,
} from '../../src/proxy/index.ts';

/** What the echo upstream saw of one request. */
export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An upstream that answers every request with what it received, and remembers it. */
export async function startEchoUpstream(): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const entry = {
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
      body: Buffer.concat(chunks).toString(),
    };
    seen.push(entry);
    const body = JSON.stringify(entry);
    response.writeHead(200, {
      'content-type': 'application/json',
      'x-upstream': 'echo',
      connection: 'x-secret-hop',
      'x-secret-hop': '1',
    });
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

export const TEST_POLICY = `
policies:
  - name: app
    rules:
      - name: admin-is-sre-only
        deny:
          and:
            - path: { prefix: /admin }
            - not: { groups: { any: [sre] } }
      - name: engineers
        allow:
          groups: { any: [engineering] }
  - name: audit-only
    rules:
      - name: nobody
        allow:
          groups: { any: [nobody] }
`;

/** Test identities, chosen by the `_vigil_session` cookie value. */
export const IDENTITIES: Record<string, RequestIdentity> = {
  alice: {
    key: 'sess-alice',
    user: { id: 'alice', email: 'alice@company.com', groups: ['engineering', 'sre'], amr: ['pwd', 'mfa'] },
  },
  bob: { key: 'sess-bob', user: { id: 'bob', email: 'bob@company.com', groups: ['engineering'] } },
  carol: { key: 'sess-carol', user: { id: 'carol', email: 'carol@company.com', groups: ['finance'] } },
};

export function cookieAuthenticator(request: IncomingMessage): RequestIdentity | undefined {
  const match = /(?:^|;\s*)_vigil_session=([a-z]+)/.exec(request.headers.cookie ?? '');
  return match ? IDENTITIES[match[1] as string] : undefined;
}

export interface ProxyHarness {
  url: string;
  proxy: AccessProxy;
  signer: AssertionSigner;
  records: ProxyDecisionRecord[];
  server: Server;
}

/** A proxy on loopback in front of `upstreamUrl` for host app.test (and audit.test in audit mode). */
export async function startProxy(
  upstreamUrl: string,
  options: {
    maxBodyBytes?: number;
    trustedProxies?: string[];
    record?: (r: ProxyDecisionRecord) => boolean;
    limiter?: AccessLimiter;
    headersTimeoutMs?: number;
    /** A private CA for a TLS upstream. */
    upstreamCa?: string;
    /** More upstreams of app.test after `upstreamUrl`, round robin. */
    moreUpstreams?: string[];
    /** The upstreams' clock (how long a refusing upstream is skipped). */
    upstreamClock?: Clock;
    revalidateEveryMs?: number;
    preserveHost?: boolean;
    onWarning?: (message: string) => void;
    peerRefusal?: (request: IncomingMessage) => string | undefined;
  } = {},
): Promise<ProxyHarness> {
  const set = compilePolicies([parsePolicyText(TEST_POLICY, 'test-policy.yaml')], {
    routes: [
      { name: 'app', host: 'app.test', pathPrefix: '/', policy: 'app' },
      { name: 'audited', host: 'audit.test', pathPrefix: '/', policy: 'audit-only', mode: 'audit' },
    ],
  });
  const upstreamOptions = {
    ...(options.headersTimeoutMs !== undefined ? { headersTimeoutMs: options.headersTimeoutMs } : {}),
    ...(options.upstreamCa !== undefined ? { ca: options.upstreamCa } : {}),
    ...(options.upstreamClock !== undefined ? { clock: options.upstreamClock } : {}),
    ...(options.preserveHost !== undefined ? { preserveHost: options.preserveHost } : {}),
  };
  const upstreams = new Map([
    ['app', new UpstreamGroup([upstreamUrl, ...(options.moreUpstreams ?? [])], upstreamOptions)],
    ['audited', new UpstreamGroup([upstreamUrl], upstreamOptions)],
  ]);
  const records: ProxyDecisionRecord[] = [];
  const server = createServer({ maxHeaderSize: 16 * 1024 });
  const signer = new AssertionSigner({ issuer: 'http://vigil.test' });
  await signer.rotate();
  const proxy = new AccessProxy({
    policies: () => set,
    upstreams: () => upstreams,
    authenticate: cookieAuthenticator,
    signer,
    sessionCookie: '_vigil_session',
    record: options.record ?? ((record) => records.push(record) > 0),
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.trustedProxies !== undefined ? { trustedProxies: options.trustedProxies } : {}),
    ...(options.limiter !== undefined ? { limiter: options.limiter } : {}),
    ...(options.revalidateEveryMs !== undefined ? { revalidateEveryMs: options.revalidateEveryMs } : {}),
    ...(options.onWarning !== undefined ? { onWarning: options.onWarning } : {}),
    ...(options.peerRefusal !== undefined ? { peerRefusal: options.peerRefusal } : {}),
  });
  server.on('request', proxy.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const group of upstreams.values()) await group.close();
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    proxy,
    signer,
    records,
    server,
  };
}

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { escapeHtml } from '../internal/html.ts';

export interface DemoApp {
  readonly name: string;
  readonly title: string;
  readonly url: string;
  close(): Promise<void>;
}

const JWKS_TIMEOUT_MS = 2000;

/**
 * A demo upstream application. It does what a real app behind Vigil should: it trusts
 * the identity only after verifying X-Vigil-Assertion against Vigil's published JWKS.
 */
export async function startDemoApp(options: {
  name: string;
  title: string;
  /** Where the app finds Vigil's keys: `<proxy>/.vigil/jwks.json`. */
  jwksUrl: string;
  /** Issuer of the assertions (the proxy's public URL). */
  issuer: string;
}): Promise<DemoApp> {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: JWKS_TIMEOUT_MS });
  const server: Server = createServer((request, response) => {
    void render(request).then(
      (html) => {
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        response.end(html);
      },
      () => {
        response.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('This application only answers requests that carry a valid Vigil assertion.\n');
      },
    );
  });

  async function render(request: IncomingMessage): Promise<string> {
    const assertion = request.headers['x-vigil-assertion'];
    if (typeof assertion !== 'string') throw new Error('no assertion');
    const { payload, protectedHeader } = await jwtVerify(assertion, jwks, {
      issuer: options.issuer,
      audience: options.name,
      algorithms: ['ES256'],
    });
    const groups = Array.isArray(payload.groups) ? payload.groups.map(String) : [];
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(options.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
dt{font-weight:600}dd{margin:0 0 .6rem}code{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>${escapeHtml(options.title)}</h1>
<p>Welcome, <strong id="user">${escapeHtml(String(payload.sub))}</strong>. Vigil let you in.</p>
<dl><dt>Email</dt><dd>${escapeHtml(String(payload.email ?? '-'))}</dd>
<dt>Groups</dt><dd id="groups">${escapeHtml(groups.join(', '))}</dd>
<dt>Assertion</dt><dd>verified with Vigil's JWKS: key <code>${escapeHtml(String(protectedHeader.kid))}</code>,
expires ${new Date((payload.exp ?? 0) * 1000).toISOString()}</dd>
<dt>Path</dt><dd><code>${escapeHtml(request.url ?? '/')}</code></dd></dl>
<p><a href="/.vigil/logout">Sign out</a></p></body></html>`;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    name: options.name,
    title: options.title,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

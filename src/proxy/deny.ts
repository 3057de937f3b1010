import type { IncomingMessage, ServerResponse } from 'node:http';
import { escapeHtml } from '../internal/html.ts';
import type { Decision, Reason } from '../policy/index.ts';

/** What a person can do about each reason; shown on the deny page. */
const ADVICE: Partial<Record<Reason, string>> = {
  'group-missing': 'Your account is not in a group this application allows. Ask its owner for access.',
  'mfa-required': 'This application needs multi-factor sign-in. Sign out and sign in again with MFA.',
  'auth-too-old': 'Your sign-in is too old for this application. Sign in again.',
  'device-missing': 'This application is only reachable from an enrolled device. Run `vigil device enroll`.',
  'device-unmanaged': 'This application is only reachable from a company-managed device.',
  'device-revoked': 'This device has been revoked. Contact IT.',
  'device-posture-failed':
    'Your device does not meet the security requirements. Please update it before accessing company resources.',
  'posture-stale':
    'Your device has not reported its security state recently. Make sure `vigil agent` is running.',
  'outside-time-window': 'This application is not available to you at this time.',
  'source-ip-denied': 'This application is not reachable from your network.',
};

export function wantsHtml(request: IncomingMessage): boolean {
  const accept = request.headers.accept;
  return accept?.includes('text/html') === true;
}

/** 403: HTML for browsers, JSON for APIs; reasons and the request id, nothing more. */
export function sendDenied(
  request: IncomingMessage,
  response: ServerResponse,
  decision: Decision,
  requestId: string,
): void {
  const reasons = decision.reasons;
  if (!wantsHtml(request)) {
    const body = JSON.stringify({ error: 'access-denied', reasons, request_id: requestId });
    response.writeHead(403, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    response.end(body);
    return;
  }
  const advice = [...new Set(reasons.map((reason) => ADVICE[reason]).filter((text) => text !== undefined))];
  sendPage(response, 403, 'Access denied', requestId, [
    '<p>Vigil did not let this request through.</p>',
    advice.length > 0 ? `<ul>${advice.map((text) => `<li>${escapeHtml(text)}</li>`).join('')}</ul>` : '',
    `<p>Reasons: ${reasons.map((reason) => `<code>${escapeHtml(reason)}</code>`).join(' ')}</p>`,
  ]);
}

const LIMIT_ADVICE: Record<'rate-limited' | 'locked-out', string> = {
  'rate-limited': 'Too many requests came from you in a short time. Wait a minute, then reload the page.',
  'locked-out':
    'Too many refused requests came from your network, so access from it is paused for a while. Try again later, or ask your administrator.',
};

/** 429 for a rate limit or lockout: a page for browsers, JSON for APIs. */
export function sendLimited(
  request: IncomingMessage,
  response: ServerResponse,
  error: 'rate-limited' | 'locked-out',
  requestId: string,
): void {
  if (!wantsHtml(request)) {
    sendError(response, 429, error, requestId);
    return;
  }
  sendPage(response, 429, 'Too many requests', requestId, [
    `<p>${escapeHtml(LIMIT_ADVICE[error])}</p>`,
    `<p>Reason: <code>${escapeHtml(error)}</code></p>`,
  ]);
}

/** Vigil's HTML page for a person: a title, the body's paragraphs, the request id. */
function sendPage(
  response: ServerResponse,
  status: number,
  title: string,
  requestId: string,
  paragraphs: readonly string[],
): void {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.5rem}code{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}li{margin:.3rem 0}
.meta{color:#656d76;font-size:.875rem;margin-top:2rem}</style></head>
<body><h1>${escapeHtml(title)}</h1>
${paragraphs.join('\n')}
<p class="meta">Request id <code>${escapeHtml(requestId)}</code> — give it to your administrator.
<a href="/.vigil/logout">Sign out</a></p></body></html>`;
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
  response.end(html);
}

/** 401 for APIs; browsers get a redirect to the login page with the path to return to. */
export function sendUnauthenticated(
  request: IncomingMessage,
  response: ServerResponse,
  returnTo: string,
  requestId: string,
  loginUrl: string = '/.vigil/login',
): void {
  if (wantsHtml(request)) {
    response.writeHead(302, {
      location: `${loginUrl}?rd=${encodeURIComponent(returnTo)}`,
      'cache-control': 'no-store',
    });
    response.end();
    return;
  }
  const body = JSON.stringify({ error: 'unauthenticated', request_id: requestId });
  response.writeHead(401, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'www-authenticate': 'Bearer realm="vigil"',
    'cache-control': 'no-store',
  });
  response.end(body);
}

export function sendError(
  response: ServerResponse,
  status: number,
  error: string,
  requestId: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error, request_id: requestId });
  response.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    // A malformed request leaves the connection in doubt: close it. Otherwise Node keeps
    // or closes it as the client asked.
    ...(status === 400 ? { connection: 'close' } : {}),
  });
  response.end(body);
}

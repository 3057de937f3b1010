import type { IncomingMessage, ServerResponse } from 'node:http';
import type { VigilConfig } from '../config/index.ts';
import { sendJson } from '../internal/http.ts';
import { hostOf } from '../proxy/index.ts';

export interface RedirectTargets {
  /** Port of the HTTPS proxy listener. */
  listenerPort: number;
  routes: readonly Pick<VigilConfig['routes'][number], 'from'>[];
  publicUrl: string | undefined;
}

/**
 * The plain-HTTP listener's answer: 308 to the same path over HTTPS, for a route's host
 * only (anything else is 404, so the listener cannot be made to redirect elsewhere).
 * The port users reach may not be the listener's (a balancer's 443 in front of 8443): the
 * route's own https URL names it when it has a port, else server.public_url does, else
 * the listener's port is used.
 */
export function redirectToHttps(
  request: IncomingMessage,
  response: ServerResponse,
  { listenerPort, routes, publicUrl }: RedirectTargets,
): void {
  const host = hostOf(request.headers.host);
  const path = request.url ?? '/';
  const route =
    host === undefined
      ? undefined
      : routes.map((candidate) => new URL(candidate.from)).find((from) => from.hostname === host);
  if (host === undefined || route === undefined || !path.startsWith('/')) {
    sendJson(response, 404, { error: 'no-route' });
    return;
  }
  const port =
    route.protocol === 'https:' && route.port !== ''
      ? route.port
      : publicUrl?.startsWith('https:')
        ? new URL(publicUrl).port
        : String(listenerPort);
  const authority = port === '' || port === '443' ? host : `${host}:${port}`;
  response.writeHead(308, { location: `https://${authority}${path}` });
  response.end();
}

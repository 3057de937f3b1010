import type { IncomingHttpHeaders } from 'node:http';

/** Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

const FORWARDED = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-real-ip',
]);

/**
 * Copies the client's headers for the upstream, dropping hop-by-hop headers, every
 * client-sent `X-Vigil-*` header, the forwarding headers of an untrusted client, and
 * Vigil's own session cookie (the upstream never sees Vigil credentials).
 */
export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  options: { sessionCookie: string; keepForwarded: boolean },
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionListed = connectionTokens(incoming.connection);
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || connectionListed?.has(name)) continue;
    if (name.startsWith('x-vigil-')) continue;
    if (!options.keepForwarded && FORWARDED.has(name)) continue;
    if (name === 'cookie') {
      const kept = withoutCookie(Array.isArray(value) ? value.join('; ') : value, options.sessionCookie);
      if (kept !== '') out.cookie = kept;
      continue;
    }
    out[name] = value;
  }
  return out;
}

/** Response headers for the client: the upstream's, less hop-by-hop ones. */
export function downstreamHeaders(
  incoming: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionListed = connectionTokens(incoming.connection);
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || HOP_BY_HOP.has(name) || connectionListed?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  return new Set(text.split(',').map((token) => token.trim().toLowerCase()));
}

/** Removes one cookie by name from a Cookie header, keeping the others as sent. */
export function withoutCookie(header: string, name: string): string {
  if (!header.includes(name)) return header;
  return header
    .split(';')
    .map((pair) => pair.trim())
    .filter(
      (pair) =>
        pair !== '' && pair.slice(0, pair.indexOf('=') === -1 ? pair.length : pair.indexOf('=')) !== name,
    )
    .join('; ');
}

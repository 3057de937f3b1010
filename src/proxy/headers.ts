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
  // Node's server has already answered `100 Continue` to the client; undici refuses to
  // send the header on.
  'expect',
]);

/** Where a request came from: believed only from a trusted proxy (as every `x-forwarded-*` name). */
const FORWARDED = new Set(['forwarded', 'x-real-ip']);

/**
 * Headers that make frameworks act on another request than the one policy decided on:
 * routing by `X-Original-URL` or `X-Rewrite-URL` (IIS, Symfony, Laminas) instead of the
 * path, or by a method override (`POST` + `X-HTTP-Method-Override: DELETE`). Vigil
 * decides on the request as it forwards it, so these are never sent on, whoever sent
 * them: a trusted balancer passes its clients' copies too.
 */
const REWRITES = new Set([
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-original-host',
  'x-original-method',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/**
 * Copies the client's headers for the upstream, dropping hop-by-hop headers, every
 * client-sent `X-Vigil-*` header, rewrite and method-override headers, the forwarding headers of an
 * untrusted client, and Vigil's credentials (the upstream never sees them): its session
 * cookie and a bearer token, which Vigil always takes as the request's credential.
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
    if (name.startsWith('x-vigil-') || REWRITES.has(name)) continue;
    if (!options.keepForwarded && (name.startsWith('x-forwarded-') || FORWARDED.has(name))) continue;
    if (name === 'authorization' && typeof value === 'string' && /^bearer /i.test(value)) continue;
    if (name === 'cookie') {
      const kept = withoutCookie(Array.isArray(value) ? value.join('; ') : value, options.sessionCookie);
      if (kept !== '') out.cookie = kept;
      continue;
    }
    out[name] = value;
  }
  return out;
}

/**
 * Response headers for the client from the upstream's raw header list (name, value, …):
 * the same less hop-by-hop ones, as a flat list for `writeHead`, repeated headers kept.
 * One pass converting each name and value once; the headers a Connection header lists
 * (anywhere in the list) are taken out afterwards, which is rare: upstreams list
 * `keep-alive` or `close`, both dropped anyway.
 */
export function downstreamRawHeaders(raw: readonly Buffer[], sessionCookie: string): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let index = 0; index < raw.length; index += 2) {
    const name = (raw[index] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') {
        const value = (raw[index + 1] as Buffer).toString('latin1');
        connection = connection === undefined ? value : `${connection},${value}`;
      }
      continue;
    }
    const value = (raw[index + 1] as Buffer).toString('latin1');
    if (lower === 'set-cookie' && setsVigilCookie(value, sessionCookie)) continue;
    out.push(name, value);
  }
  if (connection === undefined) return out;
  const listed = connectionTokens(connection) as ReadonlySet<string>;
  if (!listsEndToEndHeaders(listed)) return out;
  const kept: string[] = [];
  for (let index = 0; index < out.length; index += 2) {
    const name = out[index] as string;
    if (!listed.has(name.toLowerCase())) kept.push(name, out[index + 1] as string);
  }
  return kept;
}

/**
 * Whether an upstream's Set-Cookie would set Vigil's session cookie (or its login cookie,
 * `<name>_login`): an upstream must not log the browser in as someone else (session
 * fixation) or out of Vigil.
 */
function setsVigilCookie(setCookie: string, sessionCookie: string): boolean {
  const equals = setCookie.indexOf('=');
  // Without `=` a browser takes the whole text as the value of a cookie with no name.
  const name = equals === -1 ? '' : setCookie.slice(0, equals).trim();
  return name === sessionCookie || name === `${sessionCookie}_login`;
}

/** Whether a Connection header names anything but `close` and headers dropped anyway. */
function listsEndToEndHeaders(listed: ReadonlySet<string>): boolean {
  for (const token of listed) if (token !== 'close' && token !== '' && !HOP_BY_HOP.has(token)) return true;
  return false;
}

/**
 * A small memo for pure functions of a header value. Clients and upstreams repeat the same
 * values on every request (`Connection: keep-alive`, one browser's Cookie header), so the
 * parse happens once per distinct value, not per request. Bounded in entries and in key
 * length, since the values are untrusted: past the bound it simply starts over.
 */
class HeaderMemo<T> {
  readonly #entries = new Map<string, T>();
  readonly #limit: number;
  readonly #compute: (value: string) => T;
  constructor(limit: number, compute: (value: string) => T) {
    this.#limit = limit;
    this.#compute = compute;
  }
  get(value: string): T {
    let result = this.#entries.get(value);
    if (result === undefined) {
      result = this.#compute(value);
      if (value.length <= MEMO_MAX_VALUE_LENGTH) {
        if (this.#entries.size >= this.#limit) this.#entries.clear();
        this.#entries.set(value, result);
      }
    }
    return result;
  }
}

/** Longest header value remembered; a session cookie and a few others fit well within. */
const MEMO_MAX_VALUE_LENGTH = 4096;

const connectionMemo = new HeaderMemo<ReadonlySet<string>>(
  64,
  (text) => new Set(text.split(',').map((token) => token.trim().toLowerCase())),
);

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  return connectionMemo.get(Array.isArray(value) ? value.join(',') : value);
}

/** Cookie headers without the session cookie, per session cookie name (one in practice). */
const cookieMemos = new Map<string, HeaderMemo<string>>();

/** Removes one cookie by name from a Cookie header, keeping the others as sent. */
export function withoutCookie(header: string, name: string): string {
  if (!header.includes(name)) return header;
  let memo = cookieMemos.get(name);
  if (memo === undefined) {
    if (cookieMemos.size >= 8) cookieMemos.clear();
    memo = new HeaderMemo(512, (value) => removeCookie(value, name));
    cookieMemos.set(name, memo);
  }
  return memo.get(header);
}

function removeCookie(header: string, name: string): string {
  return header
    .split(';')
    .map((pair) => pair.trim())
    .filter(
      (pair) =>
        pair !== '' && pair.slice(0, pair.indexOf('=') === -1 ? pair.length : pair.indexOf('=')) !== name,
    )
    .join('; ');
}

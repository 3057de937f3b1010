import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { BlockList, isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type Clock, systemClock } from '../internal/clock.ts';
import {
  type CompiledPolicySet,
  type CompiledRoute,
  type Decision,
  type PolicyInput,
  permits,
} from '../policy/index.ts';
import type { AssertionSigner } from './assertion.ts';
import { sendDenied, sendError, sendLimited, sendUnauthenticated, wantsHtml } from './deny.ts';
import { downstreamRawHeaders, upstreamHeaders } from './headers.ts';
import type { AccessLimiter, LimitVerdict } from './limits.ts';
import { type NormalizedTarget, normalizeTarget } from './path.ts';
import type { Upstream, UpstreamGroup } from './upstreams.ts';

/** Who sent a request, as the identity capability established it. */
export interface RequestIdentity {
  /** Stable key of the credential (session id, token hash) for caches and revocation. */
  key: string;
  user: NonNullable<PolicyInput['user']>;
  device?: PolicyInput['device'];
}

/**
 * Establishes who sent a request for `route` (its name; undefined when none matched), so
 * that per-route settings such as re-authentication age apply. Returns a promise only
 * when it must wait (a bearer token seen for the first time); the common path is sync.
 */
export type Authenticator = (
  request: IncomingMessage,
  route: string | undefined,
) => RequestIdentity | undefined | Promise<RequestIdentity | undefined>;

/** One decision, for the audit log. */
export interface ProxyDecisionRecord {
  requestId: string;
  time: number;
  route: string | null;
  host: string;
  method: string;
  path: string;
  sourceIp: string;
  user: string | null;
  device: string | null;
  /** Key of the credential used (session id or token hash, never the credential itself). */
  session: string | null;
  decision: Decision;
  /** Time spent authenticating and deciding, in milliseconds. */
  latencyMs: number;
  /** The identity facts decided on, for replaying the decision against a draft policy. */
  groups?: readonly string[];
  amr?: readonly string[];
  authTime?: number;
  /** Which enforcement point decided: the proxy itself or forward-auth. */
  via: 'proxy' | 'forward-auth';
}

export interface ProxyOptions {
  /** Returns the policy set serving now (it is swapped on reload). */
  policies: () => CompiledPolicySet;
  /** Upstreams by route name. */
  upstreams: () => ReadonlyMap<string, UpstreamGroup>;
  authenticate: Authenticator;
  signer: AssertionSigner;
  sessionCookie: string;
  /** CIDRs whose X-Forwarded-* headers are believed (load balancers in front of Vigil). */
  trustedProxies?: readonly string[];
  maxBodyBytes?: number;
  /**
   * Called once per decision before the response; false means the audit queue refused
   * the event, and the request is refused too (fail closed).
   */
  record?: (record: ProxyDecisionRecord) => boolean;
  /** Rate limits and lockout; none when absent. */
  limiter?: AccessLimiter;
  /**
   * A reason to refuse the request before any decision, from its TLS connection: a
   * client certificate that is expired, revoked or untrusted (`cert-revoked` …).
   */
  peerRefusal?: (request: IncomingMessage) => string | undefined;
  /** Handlers for `/.vigil/login`, `/callback`, `/logout` and others owned by identity. */
  reserved?: ReadonlyMap<string, (request: IncomingMessage, response: ServerResponse) => void>;
  clock?: Clock;
  onError?: (error: unknown, requestId: string) => void;
  /** A setting that needs changing, found while serving (said once). */
  onWarning?: (message: string) => void;
  /** How often open WebSockets are authorized again, besides when the server asks. */
  revalidateEveryMs?: number;
}

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_REVALIDATE_EVERY_MS = 15_000;
const BOOT = randomBytes(4).toString('hex');

interface Authorized {
  route: CompiledRoute;
  identity: RequestIdentity | undefined;
  decision: Decision;
  target: NormalizedTarget;
  host: string;
  sourceIp: string;
}

type Verdict = Authorized | { status: number; error: string };
type LimitError = Extract<LimitVerdict, { limited: true }>['error'];

/** Errors of an upstream request that never reached the upstream: it is taken out of rotation. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH']);

/** The request being decided on, as the proxy reads it or as forward-auth is told of it. */
interface Described {
  target: NormalizedTarget;
  host: string;
  method: string;
  via: ProxyDecisionRecord['via'];
}

/** `X-Vigil-Groups` by groups list: a session's list is one array for its lifetime. */
const groupsHeaders = new WeakMap<readonly string[], string>();

function groupsHeader(groups: readonly string[]): string {
  let joined = groupsHeaders.get(groups);
  if (joined === undefined) {
    joined = groups.join(',');
    groupsHeaders.set(groups, joined);
  }
  return joined;
}

/** Answers an upgrade request that will not be upgraded, then closes the socket. */
function refuseUpgrade(socket: Duplex, status: number, error: string, requestId: string): void {
  if (!socket.writable) return;
  const body = JSON.stringify({ error, request_id: requestId });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The identity-aware reverse proxy and the forward-auth endpoint. */
export class AccessProxy {
  readonly #options: ProxyOptions;
  readonly #clock: Clock;
  readonly #trusted: BlockList | undefined;
  readonly #maxBody: number;
  #counter = 0;
  readonly #connections = new Map<string, Set<Duplex>>();
  /** Open upgraded connections with what they were authorized on, for revalidation. */
  readonly #upgrades = new Map<Duplex, { request: IncomingMessage; route: string }>();
  readonly #revalidateEveryMs: number;
  readonly #warnedFronts = new Set<string>();
  #revalidation: NodeJS.Timeout | undefined;

  constructor(options: ProxyOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#revalidateEveryMs = options.revalidateEveryMs ?? DEFAULT_REVALIDATE_EVERY_MS;
    if (options.trustedProxies && options.trustedProxies.length > 0) {
      this.#trusted = new BlockList();
      for (const cidr of options.trustedProxies) {
        const [address, bits] = cidr.split('/');
        const family = isIPv6(address ?? '') ? 'ipv6' : 'ipv4';
        this.#trusted.addSubnet(address ?? '', Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
      }
    }
  }

  /** The request listener of the proxy listener. */
  readonly handle = (request: IncomingMessage, response: ServerResponse): void => {
    const requestId = `${BOOT}-${(++this.#counter).toString(36)}`;
    this.#handle(request, response, requestId).catch((error: unknown) => {
      this.#options.onError?.(error, requestId);
      if (!response.headersSent) sendError(response, 502, 'upstream-error', requestId);
      else response.destroy();
    });
  };

  async #handle(request: IncomingMessage, response: ServerResponse, requestId: string): Promise<void> {
    if ((request.url ?? '/').startsWith('/.vigil/')) {
      this.#reserved(request, response, requestId);
      return;
    }
    // Awaited only when it must wait (a bearer token seen for the first time): each await
    // of a value that is already there still costs a promise and a microtask per request.
    const authorizing = this.#authorize(request, requestId);
    const verdict = authorizing instanceof Promise ? await authorizing : authorizing;
    if ('status' in verdict) {
      if (verdict.status === 429) sendLimited(request, response, verdict.error as LimitError, requestId);
      else sendError(response, verdict.status, verdict.error, requestId);
      return;
    }
    const { route, decision, target } = verdict;
    if (!permits(decision)) {
      this.#refuse(request, response, decision, `${target.path}${target.search}`, requestId);
      return;
    }
    const group = this.#options.upstreams().get(route.name);
    if (group === undefined) {
      sendError(response, 502, 'no-upstream', requestId);
      return;
    }
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > this.#maxBody) {
      sendError(response, 413, 'body-too-large', requestId);
      return;
    }
    const preparing = this.#upstreamHeaders(request, verdict, requestId);
    const headers = preparing instanceof Promise ? await preparing : preparing;
    this.#forward(request, response, group, `${target.path}${target.search}`, headers, requestId);
  }

  /**
   * Everything before forwarding, shared by HTTP and WebSocket: target normalization,
   * Host, identity, the decision and its audit record. A refusal comes back as a status.
   */
  #authorize(request: IncomingMessage, requestId: string): Verdict | Promise<Verdict> {
    const target = normalizeTarget(request.url ?? '/');
    if ('problem' in target) return { status: 400, error: `bad-request-target:${target.problem}` };
    const host = hostOf(request.headers.host);
    if (host === undefined || hasRepeatedHost(request.rawHeaders)) return { status: 400, error: 'bad-host' };
    const refused = this.#options.peerRefusal?.(request);
    if (refused !== undefined) return { status: 403, error: refused };
    const startedAt = performance.now();
    const set = this.#options.policies();
    const route = set.routeFor(host, target.path);
    const found = this.#options.authenticate(request, route?.name);
    const described: Described = { target, host, method: request.method ?? 'GET', via: 'proxy' };
    return found instanceof Promise
      ? found.then((identity) => this.#decide(request, requestId, described, set, route, startedAt, identity))
      : this.#decide(request, requestId, described, set, route, startedAt, found);
  }

  /**
   * Once the identity is known, for the proxy and forward-auth alike: rate limits and
   * lockout, the decision, its audit record.
   */
  #decide(
    request: IncomingMessage,
    requestId: string,
    { target, host, method, via }: Described,
    set: CompiledPolicySet,
    route: CompiledRoute | undefined,
    startedAt: number,
    identity: RequestIdentity | undefined,
  ): Verdict {
    const sourceIp = this.#sourceIp(request);
    // Forward-auth from a front proxy Vigil does not trust: the client's address is not
    // known, so no per-source limit or lockout (they would count the front proxy).
    const clientKnown = via === 'proxy' || this.#isTrusted(request);
    if (!clientKnown) this.#warnUntrustedFront(sourceIp);
    const limited = this.#options.limiter?.check(identity?.user.id, clientKnown ? sourceIp : undefined);
    if (limited?.limited) return { status: 429, error: limited.error };
    // For forward-auth the TLS peer is the front proxy, not the client.
    const input = this.#input(request, host, target.path, method, sourceIp, identity, via === 'proxy');
    const decision = route === undefined ? set.decide(input) : route.decide(input);
    if (!this.#record(requestId, input, identity, decision, via, startedAt))
      return { status: 503, error: 'audit-unavailable' };
    // Lockout counts refusals by policy, not visitors who have yet to log in.
    if (clientKnown && !permits(decision) && !decision.reasons.includes('user-unauthenticated')) {
      this.#options.limiter?.recordDenial(sourceIp);
    }
    if (route === undefined) return { status: 404, error: 'no-route' };
    return { route, identity, decision, target, host, sourceIp };
  }

  /**
   * WebSocket (and any other Upgrade): authorized like a request; on allow the two
   * sockets are spliced, and the connection is tracked so a revocation can close it.
   */
  readonly handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const requestId = `${BOOT}-${(++this.#counter).toString(36)}`;
    socket.on('error', () => socket.destroy());
    this.#upgrade(request, socket, head, requestId).catch((error: unknown) => {
      this.#options.onError?.(error, requestId);
      refuseUpgrade(socket, 502, 'upstream-error', requestId);
    });
  };

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, requestId: string): Promise<void> {
    // Only WebSocket: an `h2c` (or other) upgrade would hand the connection to a protocol
    // whose later requests Vigil never sees.
    if (
      String(request.headers.upgrade ?? '')
        .trim()
        .toLowerCase() !== 'websocket'
    ) {
      refuseUpgrade(socket, 400, 'unsupported-upgrade', requestId);
      return;
    }
    const verdict = await this.#authorize(request, requestId);
    if ('status' in verdict) {
      refuseUpgrade(socket, verdict.status, verdict.error, requestId);
      return;
    }
    const { route, identity, decision, target } = verdict;
    if (!permits(decision)) {
      const unauthenticated = decision.reasons.includes('user-unauthenticated');
      refuseUpgrade(
        socket,
        unauthenticated ? 401 : 403,
        unauthenticated ? 'unauthenticated' : 'access-denied',
        requestId,
      );
      return;
    }
    const group = this.#options.upstreams().get(route.name);
    if (group === undefined) {
      refuseUpgrade(socket, 502, 'no-upstream', requestId);
      return;
    }
    const headers = await this.#upstreamHeaders(request, verdict, requestId);
    if (socket.destroyed) return;
    const upstream = group.pick();
    if (group.preserveHost) headers.host = request.headers.host ?? '';
    // undici sends the handshake over the upstream's pool (its TLS settings and CA, its
    // header checks) and hands over the socket only on 101: until then the client's
    // bytes stay unread, so nothing reaches the upstream outside a decided request.
    upstream.pool.dispatch(
      {
        path: `${upstream.basePath}${target.path}${target.search}`,
        method: (request.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
        upgrade: 'websocket',
      },
      new UpgradeHandler(socket, head, this.#options.sessionCookie, requestId, {
        upgraded: (upstreamSocket) => {
          upstreamSocket.on('error', () => socket.destroy());
          socket.on('close', () => upstreamSocket.destroy());
          upstreamSocket.on('close', () => socket.destroy());
          this.#track(identity?.key, socket, request, route.name);
        },
        failed: (error) => {
          if (NOT_CONNECTED.has((error as { code?: string }).code ?? '')) group.markDown(upstream);
          this.#options.onError?.(error, requestId);
        },
      }),
    );
  }

  /** `key`: the credential's, for closeConnectionsOf; undefined for an anonymous socket. */
  #track(key: string | undefined, socket: Duplex, request: IncomingMessage, route: string): void {
    let sockets = key === undefined ? undefined : this.#connections.get(key);
    if (key !== undefined && sockets === undefined) {
      sockets = new Set();
      this.#connections.set(key, sockets);
    }
    sockets?.add(socket);
    this.#upgrades.set(socket, { request, route });
    // Besides the changes the server reports, a policy reload, a session that expired or
    // a rule on the time of day can end a socket's permission: checked every while.
    this.#revalidation ??= setInterval(() => {
      this.revalidateConnections().catch((error: unknown) => this.#options.onError?.(error, 'revalidation'));
    }, this.#revalidateEveryMs).unref();
    socket.once('close', () => {
      sockets?.delete(socket);
      this.#upgrades.delete(socket);
      if (key !== undefined && sockets?.size === 0) this.#connections.delete(key);
      if (this.#upgrades.size === 0) {
        clearInterval(this.#revalidation);
        this.#revalidation = undefined;
      }
    });
  }

  /**
   * Authenticates and decides again for every open WebSocket, closing those no longer
   * allowed. The server calls it when sessions, devices or posture change, so that a
   * revocation ends long-lived connections too, on every replica; the proxy itself every
   * `revalidateEveryMs` while sockets are open.
   */
  async revalidateConnections(): Promise<number> {
    let closed = 0;
    const set = this.#options.policies();
    for (const [socket, { request, route: routeName }] of this.#upgrades) {
      // A client certificate revoked or expired since: refused as a new request would be.
      if (this.#options.peerRefusal?.(request) !== undefined) {
        socket.destroy();
        closed++;
        continue;
      }
      const found = this.#options.authenticate(request, routeName);
      const identity = found instanceof Promise ? await found : found;
      const target = normalizeTarget(request.url ?? '/');
      const host = hostOf(request.headers.host);
      const route = host !== undefined && 'path' in target ? set.routeFor(host, target.path) : undefined;
      // As for a new request: a socket opened anonymously stays while the route allows that.
      const allowed =
        route !== undefined &&
        'path' in target &&
        host !== undefined &&
        permits(
          route.decide(
            this.#input(
              request,
              host,
              target.path,
              request.method ?? 'GET',
              this.#sourceIp(request),
              identity,
            ),
          ),
        );
      if (!allowed) {
        socket.destroy();
        closed++;
      }
    }
    return closed;
  }

  /** Closes every open WebSocket (shutdown: the listener's close waits for them). */
  closeUpgraded(): number {
    const count = this.#upgrades.size;
    for (const socket of [...this.#upgrades.keys()]) socket.destroy();
    return count;
  }

  /** Closes every long-lived connection (WebSocket) opened with a credential; for revocation. */
  closeConnectionsOf(key: string): number {
    const sockets = this.#connections.get(key);
    if (sockets === undefined) return 0;
    for (const socket of sockets) socket.destroy();
    this.#options.signer.forget(key);
    return sockets.size;
  }

  /**
   * Sends an allowed request upstream and streams the answer back. undici's dispatch with
   * a handler writing straight to the response: no promise, response stream or pipe per
   * request, with backpressure both ways.
   */
  #forward(
    request: IncomingMessage,
    response: ServerResponse,
    group: UpstreamGroup,
    path: string,
    headers: Record<string, string | string[]>,
    requestId: string,
    /** Upstreams that refused the connection already (a retry); none at first. */
    refused?: ReadonlySet<Upstream>,
  ): void {
    // The client left while its request was being authorized: do not spend (and then
    // abort, which closes) a pooled upstream connection on it.
    if (response.destroyed) return;
    const upstream: Upstream = group.pick();
    if (group.preserveHost) headers.host = request.headers.host ?? '';
    if (refused?.has(upstream)) {
      sendError(response, 502, 'upstream-unavailable', requestId);
      return;
    }
    const hasBody =
      request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined;
    upstream.pool.dispatch(
      {
        path: `${upstream.basePath}${path}`,
        method: (request.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
        body: hasBody ? Readable.from(limitBody(request, this.#maxBody)) : null,
      },
      new RelayHandler(response, this.#options.sessionCookie, (error) => {
        // Never connected, so nothing was sent: another upstream gets the request, as
        // nginx's proxy_next_upstream does, unless a body was (partly) read already.
        if (!hasBody && NOT_CONNECTED.has((error as { code?: string }).code ?? '')) {
          group.markDown(upstream);
          const tried = new Set(refused).add(upstream);
          if (tried.size < group.upstreams.length) {
            this.#forward(request, response, group, path, headers, requestId, tried);
            return;
          }
        }
        this.#upstreamFailed(error, response, group, upstream, requestId);
      }),
    );
  }

  /** An upstream request that failed before its response started. */
  #upstreamFailed(
    error: Error,
    response: ServerResponse,
    group: UpstreamGroup,
    upstream: Upstream,
    requestId: string,
  ): void {
    const code = (error as { code?: string }).code;
    if (NOT_CONNECTED.has(code ?? '')) group.markDown(upstream);
    if (code === 'VIGIL_BODY_TOO_LARGE' || error.message === 'body-too-large') {
      sendError(response, 413, 'body-too-large', requestId);
      return;
    }
    if (response.destroyed) return;
    this.#options.onError?.(error, requestId);
    sendError(response, code === 'UND_ERR_HEADERS_TIMEOUT' ? 504 : 502, 'upstream-unavailable', requestId);
  }

  #refuse(
    request: IncomingMessage,
    response: ServerResponse,
    decision: Decision,
    returnTo: string,
    requestId: string,
  ): void {
    if (decision.reasons.includes('user-unauthenticated')) {
      sendUnauthenticated(request, response, returnTo, requestId);
      return;
    }
    sendDenied(request, response, decision, requestId);
  }

  #reserved(request: IncomingMessage, response: ServerResponse, requestId: string): void {
    const path = (request.url ?? '').split('?')[0] ?? '';
    if (path === '/.vigil/healthz') {
      sendJsonBody(response, 200, '{"status":"ok"}');
      return;
    }
    if (path === '/.vigil/jwks.json') {
      sendJsonBody(response, 200, this.#options.signer.jwksBody, { 'cache-control': 'public, max-age=60' });
      return;
    }
    if (path === '/.vigil/auth' || path.startsWith('/.vigil/auth/')) {
      this.#forwardAuth(request, response, requestId).catch((error: unknown) => {
        this.#options.onError?.(error, requestId);
        if (!response.headersSent) sendError(response, 500, 'internal-error', requestId);
      });
      return;
    }
    const handler = this.#options.reserved?.get(path);
    if (handler) {
      handler(request, response);
      return;
    }
    sendError(response, 404, 'not-found', requestId);
  }

  /**
   * Forward-auth for nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`.
   * nginx and Traefik describe the original request in X-Forwarded-Method, -Host and -Uri
   * (they set them, overwriting the client's). Envoy appends the original path to the
   * auth path and keeps the method and Host; on that form X-Forwarded-* are not read,
   * since there they could only come from the client. An unauthenticated browser gets
   * 401 with a Location (nginx's `error_page 401` follows it); with `?redirect=1`
   * (Traefik) and on Envoy's form, which hand Vigil's answer to the browser, a 302.
   */
  async #forwardAuth(request: IncomingMessage, response: ServerResponse, requestId: string): Promise<void> {
    const header = (name: string) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const url = request.url ?? '';
    const envoy = url.startsWith('/.vigil/auth/');
    const uri = envoy ? url.slice('/.vigil/auth'.length) : header('x-forwarded-uri');
    if (uri === undefined) {
      // Deciding on some default path would let rules on paths fail open.
      sendError(response, 400, 'forward-auth-uri-missing', requestId);
      return;
    }
    const hostHeader = envoy ? request.headers.host : (header('x-forwarded-host') ?? request.headers.host);
    const host = hostOf(hostHeader);
    const target = normalizeTarget(uri);
    if (host === undefined || 'problem' in target) {
      sendError(
        response,
        400,
        'problem' in target ? `bad-request-target:${target.problem}` : 'bad-host',
        requestId,
      );
      return;
    }
    const method = (envoy ? request.method : (header('x-forwarded-method') ?? request.method)) ?? 'GET';
    const startedAt = performance.now();
    const set = this.#options.policies();
    const route = set.routeFor(host, target.path);
    const found = this.#options.authenticate(request, route?.name);
    const identity = found instanceof Promise ? await found : found;
    const described: Described = { target, host, method: method.toUpperCase(), via: 'forward-auth' };
    const verdict = this.#decide(request, requestId, described, set, route, startedAt, identity);
    // Traefik and Envoy hand Vigil's answer to the client; nginx takes any status but
    // 2xx, 401 and 403 for its own error (a 500 to the client).
    const query = url.indexOf('?') === -1 ? '' : url.slice(url.indexOf('?') + 1);
    const handedToClient = envoy || new URLSearchParams(query).get('redirect') === '1';
    if ('status' in verdict) {
      if (verdict.error === 'no-route') sendError(response, 403, 'no-route', requestId);
      else if (verdict.status === 429 && handedToClient)
        sendLimited(request, response, verdict.error as LimitError, requestId);
      else if (verdict.status === 429) sendError(response, 403, verdict.error, requestId);
      else sendError(response, verdict.status, verdict.error, requestId);
      return;
    }
    const { decision } = verdict;
    if (!permits(decision)) {
      if (decision.reasons.includes('user-unauthenticated')) {
        const proto = header('x-forwarded-proto') === 'https' ? 'https' : 'http';
        // The Host as sent (hostOf has checked it), port included.
        const login = `${proto}://${hostHeader}/.vigil/login`;
        const returnTo = `${target.path}${target.search}`;
        if (handedToClient) {
          sendUnauthenticated(request, response, returnTo, requestId, login);
          return;
        }
        const location = `${login}?rd=${encodeURIComponent(returnTo)}`;
        sendError(response, 401, 'unauthenticated', requestId, wantsHtml(request) ? { location } : {});
        return;
      }
      sendDenied(request, response, decision, requestId);
      return;
    }
    const headers: Record<string, string | string[]> = {};
    if (identity !== undefined) await this.#addIdentity(headers, identity, verdict.route.name);
    headers['x-request-id'] = requestId;
    response.writeHead(200, { ...headers, 'cache-control': 'no-store', 'content-length': 0 });
    response.end();
  }

  /** Adds the identity headers; a promise only when the assertion must be signed first. */
  #addIdentity(
    headers: Record<string, string | string[]>,
    identity: RequestIdentity,
    route: string,
  ): void | Promise<void> {
    const { user, device } = identity;
    headers['x-vigil-user'] = user.id;
    if (user.email !== undefined) headers['x-vigil-email'] = user.email;
    headers['x-vigil-groups'] = groupsHeader(user.groups);
    if (device !== undefined) headers['x-vigil-device'] = device.id;
    const assertion = this.#options.signer.assertionFor(identity.key, route, {
      sub: user.id,
      email: user.email,
      groups: user.groups,
      device: device?.id,
    });
    if (typeof assertion === 'string') {
      headers['x-vigil-assertion'] = assertion;
      return;
    }
    return assertion.then((token) => {
      headers['x-vigil-assertion'] = token;
    });
  }

  /**
   * X-Forwarded-For gets the peer appended; -Proto and -Host describe the connection the
   * client made, so a trusted proxy's (the TLS balancer's `https`) are kept, anyone
   * else's were dropped in upstreamHeaders and are set from this connection.
   */
  #addForwarded(
    headers: Record<string, string | string[]>,
    request: IncomingMessage,
    host: string,
    sourceIp: string,
  ): void {
    const prior = headers['x-forwarded-for'];
    headers['x-forwarded-for'] =
      prior === undefined ? this.#peer(request) : `${String(prior)}, ${this.#peer(request)}`;
    headers['x-forwarded-proto'] ??= (request.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    headers['x-forwarded-host'] ??= request.headers.host ?? host;
    headers['x-real-ip'] = sourceIp;
  }

  /**
   * The headers an allowed request carries upstream: the client's, cleaned, plus Vigil's.
   * A promise only when the assertion must be signed first.
   */
  #upstreamHeaders(
    request: IncomingMessage,
    { host, sourceIp, identity, route }: Authorized,
    requestId: string,
  ): Record<string, string | string[]> | Promise<Record<string, string | string[]>> {
    const headers = upstreamHeaders(request.headers, {
      sessionCookie: this.#options.sessionCookie,
      keepForwarded: this.#isTrusted(request),
    });
    this.#addForwarded(headers, request, host, sourceIp);
    headers['x-request-id'] = requestId;
    const adding = identity === undefined ? undefined : this.#addIdentity(headers, identity, route.name);
    return adding === undefined ? headers : adding.then(() => headers);
  }

  /** What policy sees of a request; built the same way for every enforcement path. */
  #input(
    request: IncomingMessage,
    host: string,
    path: string,
    method: string,
    sourceIp: string,
    identity: RequestIdentity | undefined,
    /** False for forward-auth, where the TLS peer is the front proxy, not the client. */
    peerIsClient = true,
  ): PolicyInput {
    return {
      host,
      path,
      method,
      headers: request.headers as Record<string, string | undefined>,
      sourceIp,
      now: this.#clock.now(),
      user: identity?.user,
      device: identity?.device,
      clientCertificate: peerIsClient && isClientCertificatePresent(request),
    };
  }

  #record(
    requestId: string,
    input: PolicyInput,
    identity: RequestIdentity | undefined,
    decision: Decision,
    via: ProxyDecisionRecord['via'],
    startedAt: number,
  ): boolean {
    const record = this.#options.record;
    if (record === undefined) return true;
    return record({
      requestId,
      time: input.now,
      route: decision.route ?? null,
      host: input.host,
      method: input.method,
      path: input.path,
      sourceIp: input.sourceIp ?? '',
      user: identity?.user.id ?? null,
      device: identity?.device?.id ?? null,
      session: identity?.key ?? null,
      decision,
      latencyMs: performance.now() - startedAt,
      // Fields always present (undefined when unknown): one object shape, no spreads.
      groups: identity?.user.groups,
      amr: identity?.user.amr,
      authTime: identity?.user.authTime,
      via,
    });
  }

  /** Once per front proxy address: the operator has a setting to add. */
  #warnUntrustedFront(address: string): void {
    if (this.#warnedFronts.has(address) || this.#warnedFronts.size >= 64) return;
    this.#warnedFronts.add(address);
    this.#options.onWarning?.(
      `forward-auth requests come from ${address}, which is not in server.trusted_proxies: policy sees that address as the client's (source_ip rules), and per-source limits and lockout are off for them; add the front proxy's address to server.trusted_proxies`,
    );
  }

  #peer(request: IncomingMessage): string {
    const address = request.socket.remoteAddress ?? '';
    return address.startsWith('::ffff:') ? address.slice(7) : address;
  }

  #isTrusted(request: IncomingMessage): boolean {
    if (this.#trusted === undefined) return false;
    const peer = this.#peer(request);
    return this.#trusted.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4');
  }

  /** The client address: the peer, or for a trusted proxy the last address it did not add. */
  /** The client address of a request: the peer, or X-Forwarded-For when the peer is a trusted proxy. */
  sourceIpOf(request: IncomingMessage): string {
    return this.#sourceIp(request);
  }

  #sourceIp(request: IncomingMessage): string {
    const peer = this.#peer(request);
    if (!this.#isTrusted(request)) return peer;
    const forwarded = request.headers['x-forwarded-for'];
    if (typeof forwarded !== 'string') return peer;
    const hops = forwarded.split(',').map((hop) => hop.trim());
    for (let index = hops.length - 1; index >= 0; index--) {
      const hop = hops[index] as string;
      if (!this.#trusted?.check(hop, isIPv6(hop) ? 'ipv6' : 'ipv4')) return hop;
    }
    return hops[0] ?? peer;
  }
}

/**
 * Writes one upstream response to the client as undici delivers it. The upstream is
 * paused while the client's socket is full and aborted when the client goes away; an
 * upstream failing mid-body ends the client's response (it cannot be answered anymore).
 */
class RelayHandler implements Dispatcher.DispatchHandler {
  readonly #response: ServerResponse;
  readonly #sessionCookie: string;
  readonly #failedBeforeResponse: (error: Error) => void;
  #abort: ((reason?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #done = false;

  constructor(response: ServerResponse, sessionCookie: string, failedBeforeResponse: (error: Error) => void) {
    this.#response = response;
    this.#sessionCookie = sessionCookie;
    this.#failedBeforeResponse = failedBeforeResponse;
    response.once('close', this.#onClientClose);
  }

  readonly #onClientClose = (): void => {
    if (!this.#done) this.#abort?.(new Error('client closed the connection'));
  };

  readonly #onDrain = (): void => this.#resume?.();

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#response.destroyed) abort(new Error('client closed the connection'));
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.#resume = resume;
    try {
      this.#response.writeHead(statusCode, downstreamRawHeaders(headers, this.#sessionCookie));
    } catch (error) {
      // A header Node refuses (undici's parser refuses the same bytes, so this is a
      // safety net): the response is half-changed and cannot carry a clean 502, so the
      // client's connection is closed rather than answered with a broken message.
      this.#done = true;
      this.#response.destroy();
      this.#abort?.(error as Error);
      return false;
    }
    return true;
  }

  /** False pauses the upstream until the client's socket drains. */
  onData(chunk: Buffer): boolean {
    if (this.#response.write(chunk)) return true;
    this.#response.once('drain', this.#onDrain);
    return false;
  }

  onComplete(): void {
    this.#done = true;
    this.#response.end();
  }

  onError(error: Error): void {
    this.#done = true;
    if (!this.#response.headersSent) this.#failedBeforeResponse(error);
    else this.#response.destroy();
  }
}

/**
 * The upstream side of a WebSocket handshake. On 101 the upstream's answer goes to the
 * client (hop-by-hop headers and Vigil's cookies left out) and the two sockets are
 * joined; any other answer refuses the upgrade with that status and closes both.
 */
class UpgradeHandler implements Dispatcher.DispatchHandler {
  readonly #client: Duplex;
  readonly #head: Buffer;
  readonly #sessionCookie: string;
  readonly #requestId: string;
  readonly #on: { upgraded: (upstream: Duplex) => void; failed: (error: Error) => void };
  #abort: ((reason?: Error) => void) | undefined;
  /** Answered (refused or upgraded) or given up by the client: an error after is no news. */
  #settled = false;

  constructor(
    client: Duplex,
    head: Buffer,
    sessionCookie: string,
    requestId: string,
    on: { upgraded: (upstream: Duplex) => void; failed: (error: Error) => void },
  ) {
    this.#client = client;
    this.#head = head;
    this.#sessionCookie = sessionCookie;
    this.#requestId = requestId;
    this.#on = on;
    client.once('close', this.#onClientClose);
  }

  readonly #onClientClose = (): void => {
    this.#settled = true;
    this.#abort?.(new Error('client closed the connection'));
  };

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#client.destroyed) abort(new Error('client closed the connection'));
  }

  onHeaders(statusCode: number): boolean {
    // 1xx (103 Early Hints) before the 101: wait for the real answer.
    if (statusCode < 200) return true;
    this.#settled = true;
    this.#client.off('close', this.#onClientClose);
    refuseUpgrade(
      this.#client,
      statusCode >= 400 && statusCode <= 599 ? statusCode : 502,
      'upgrade-refused-by-upstream',
      this.#requestId,
    );
    this.#abort?.(new Error('the upstream refused the upgrade'));
    return false;
  }

  onData(): boolean {
    return false;
  }

  onComplete(): void {}

  onUpgrade(statusCode: number, rawHeaders: Buffer[], upstream: Duplex): void {
    this.#settled = true;
    this.#client.off('close', this.#onClientClose);
    if (this.#client.destroyed) {
      upstream.destroy();
      return;
    }
    const lines = [`HTTP/1.1 ${statusCode} Switching Protocols`, 'connection: Upgrade', 'upgrade: websocket'];
    const headers = downstreamRawHeaders(rawHeaders, this.#sessionCookie);
    for (let index = 0; index < headers.length; index += 2)
      lines.push(`${headers[index]}: ${headers[index + 1]}`);
    this.#client.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (this.#head.length > 0) upstream.write(this.#head);
    upstream.pipe(this.#client);
    this.#client.pipe(upstream);
    this.#on.upgraded(upstream);
  }

  onError(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#client.off('close', this.#onClientClose);
    if (this.#client.writable) refuseUpgrade(this.#client, 502, 'upstream-unavailable', this.#requestId);
    else this.#client.destroy();
    this.#on.failed(error);
  }
}

/** Host header → lower-case host without port; undefined when absent or malformed. */
export function hostOf(header: string | undefined): string | undefined {
  if (header === undefined || header === '' || header.length > 255) return undefined;
  const match = /^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(?::\d{1,5})?$/.exec(header);
  return match ? (match[1] as string).toLowerCase() : undefined;
}

/** Node keeps the first of several Host headers; a front proxy may keep another (RFC 9112 §3.2: 400). */
function hasRepeatedHost(rawHeaders: readonly string[]): boolean {
  let seen = 0;
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index] as string;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++seen > 1) return true;
  }
  return false;
}

function isClientCertificatePresent(request: IncomingMessage): boolean {
  const socket = request.socket as { authorized?: boolean; getPeerCertificate?: () => { raw?: Buffer } };
  return socket.authorized === true && socket.getPeerCertificate?.().raw !== undefined;
}

async function* limitBody(request: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error('body-too-large'), { code: 'VIGIL_BODY_TOO_LARGE' });
    yield chunk as Buffer;
  }
}

function sendJsonBody(
  response: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  response.end(body);
}

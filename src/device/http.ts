import type { IncomingMessage, ServerResponse } from 'node:http';
import { isVigilError, VigilError } from '../errors.ts';
import { escapeHtml } from '../internal/html.ts';
import { type ApiRoute, badRequest, readBody, readJson, sendJson } from '../internal/http.ts';
import { Counter, type Logger, type Registry } from '../telemetry/index.ts';
import type { PostureProvider } from './providers.ts';
import {
  MAX_PROVIDER_BODY_BYTES,
  mapProviderPayload,
  PROVIDER_SIGNATURE_HEADER,
  verifyProviderSignature,
} from './providers.ts';
import type {
  DeviceRecord,
  DeviceRegistry,
  DeviceRequestInfo,
  DeviceState,
  IssuedDevice,
} from './registry.ts';
import { normalizeUserCode } from './registry.ts';
import { MAX_SIGNED_REQUEST_BYTES } from './report.ts';

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

export interface DeviceEndpointOptions {
  registry: DeviceRegistry;
  providers: readonly PostureProvider[];
  /** The logged-in user of a browser request (session cookie), or undefined. */
  whoIs(request: IncomingMessage): Promise<{ userId: string; email: string | undefined } | undefined>;
  logger?: Logger;
  now?: () => number;
  /** The client address as the proxy sees it (trusted proxies applied); the socket's otherwise. */
  sourceIp?: (request: IncomingMessage) => string | undefined;
  /** Counts requests by endpoint and status when given. */
  metrics?: Registry | undefined;
  /** `server.public_url`: the origin users see, for the URLs shown and the approval form's Origin check. */
  publicUrl?: string | undefined;
}

/** Device grants one source may start per window: enough for a family of machines behind one address. */
export const GRANTS_PER_SOURCE = 20;
const GRANT_WINDOW_MS = 600_000;
const MAX_TRACKED_SOURCES = 10_000;

/**
 * Counts device grants per source address in a fixed window, so that one client cannot
 * fill the global cap of waiting grants and lock everyone else out of enrollment.
 */
class GrantLimiter {
  readonly #counts = new Map<string, { windowStart: number; count: number }>();

  allow(source: string, now: number): boolean {
    let entry = this.#counts.get(source);
    if (entry === undefined || now - entry.windowStart >= GRANT_WINDOW_MS) {
      entry = { windowStart: now, count: 0 };
      this.#counts.delete(source);
      this.#counts.set(source, entry);
      // Oldest first in a Map: forget the longest-idle sources when too many are tracked.
      for (const key of this.#counts.keys()) {
        if (this.#counts.size <= MAX_TRACKED_SOURCES) break;
        this.#counts.delete(key);
      }
    }
    entry.count++;
    return entry.count <= GRANTS_PER_SOURCE;
  }
}

/** Enrollment bodies carry a CSR and a few names: small. */
const ENROLL_BODY_LIMIT = 32 * 1024;

export const DEVICE_PATHS = {
  authorize: '/.vigil/device/authorize',
  activate: '/.vigil/device/activate',
  token: '/.vigil/device/token',
  enroll: '/.vigil/device/enroll',
  posture: '/.vigil/device/posture',
  renew: '/.vigil/device/renew',
} as const;

/** Webhook path of a posture provider. */
export const providerPath = (name: string) => `/.vigil/posture/${name}`;

function issuedBody(device: IssuedDevice) {
  return {
    device_id: device.deviceId,
    state: device.state,
    spiffe_id: device.spiffeId,
    serial: device.serial,
    certificate: device.certificatePem,
    ca_bundle: device.bundlePem,
    not_after: device.notAfter.toISOString(),
    renew_after: device.renewAfter.toISOString(),
  };
}

function requestInfo(body: unknown): DeviceRequestInfo {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('body must be a JSON object');
  const { csr, name, serial, platform, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw badRequest(`unknown field ${unknown.slice(0, 40)}`);
  if (typeof csr !== 'string') throw badRequest('csr must be a PEM string');
  if (typeof name !== 'string') throw badRequest('name must be a string');
  if (serial !== undefined && typeof serial !== 'string') throw badRequest('serial must be a string');
  if (platform !== undefined && typeof platform !== 'string') throw badRequest('platform must be a string');
  return { csr, name, serial, platform };
}

function methodNotAllowed(): VigilError {
  return new VigilError('ERR_HTTP_BAD_REQUEST', 'method not allowed', {
    status: 405,
    publicMessage: 'method not allowed',
  });
}

async function readText(request: IncomingMessage, limit: number): Promise<string> {
  return (await readBody(request, limit)).toString('utf8');
}

/**
 * The device endpoints on the proxy listener: enrollment (token and RFC 8628 device
 * grant with its browser approval page), posture reports and certificate renewal
 * signed by the device key, and the posture providers' webhooks.
 */
export function deviceEndpoints(options: DeviceEndpointOptions): Map<string, Handler> {
  const { registry, logger } = options;
  const now = options.now ?? Date.now;
  const configured = options.publicUrl === undefined ? undefined : new URL(options.publicUrl).origin;
  const publicBase = (request: IncomingMessage) => configured ?? requestOrigin(request);
  const requests = options.metrics
    ? new Counter({
        name: 'vigil_device_requests_total',
        help: 'Requests to the device endpoints (enrollment, posture, renewal, provider webhooks) by status',
        labelNames: ['endpoint', 'status'],
        registers: [options.metrics],
      })
    : undefined;
  const wrap =
    (
      endpoint: string,
      work: (request: IncomingMessage, response: ServerResponse) => Promise<void>,
    ): Handler =>
    (request, response) => {
      if (requests)
        response.once('finish', () => requests.labels(endpoint, String(response.statusCode)).inc());
      work(request, response).catch((error: unknown) => {
        const status = isVigilError(error) ? error.status : 500;
        if (status >= 500) logger?.error({ err: error, path: request.url }, 'device endpoint failed');
        else
          logger?.info(
            { code: isVigilError(error) ? error.code : undefined, path: request.url },
            'device request refused',
          );
        if (response.headersSent) {
          response.destroy();
          return;
        }
        sendJson(response, status, {
          error: isVigilError(error) ? error.code : 'ERR_INTERNAL',
          message: isVigilError(error) ? error.publicMessage : 'internal error',
        });
      });
    };
  const post = (request: IncomingMessage) => {
    if (request.method !== 'POST') throw methodNotAllowed();
  };

  const grants = new GrantLimiter();
  const handlers = new Map<string, Handler>();
  handlers.set(
    DEVICE_PATHS.authorize,
    wrap('authorize', async (request, response) => {
      post(request);
      const source = options.sourceIp?.(request) ?? request.socket.remoteAddress ?? 'unknown';
      if (!grants.allow(source, now())) {
        throw new VigilError('ERR_DEVICE_AUTHORIZATION', 'too many enrollments started from one address', {
          status: 429,
          publicMessage: 'too many enrollments from this address; try again in 10 minutes',
        });
      }
      const info = requestInfo(await readJson(request, ENROLL_BODY_LIMIT));
      const started = await registry.startAuthorization(info);
      const base = publicBase(request);
      sendJson(response, 200, {
        device_code: started.deviceCode,
        user_code: started.userCode,
        verification_uri: `${base}${DEVICE_PATHS.activate}`,
        verification_uri_complete: `${base}${DEVICE_PATHS.activate}?user_code=${started.userCode}`,
        expires_in: Math.round((started.expiresAt - now()) / 1000),
        interval: started.intervalS,
      });
    }),
  );
  handlers.set(
    DEVICE_PATHS.token,
    wrap('token', async (request, response) => {
      post(request);
      const body = await readJson(request, ENROLL_BODY_LIMIT);
      const deviceCode = (body as { device_code?: unknown } | null)?.device_code;
      if (typeof deviceCode !== 'string') throw badRequest('device_code is required');
      const result = await registry.pollAuthorization(deviceCode);
      if (result.status === 'issued') sendJson(response, 200, issuedBody(result.device));
      else sendJson(response, 400, { error: result.status });
    }),
  );
  handlers.set(
    DEVICE_PATHS.enroll,
    wrap('enroll', async (request, response) => {
      post(request);
      const token = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (token === undefined)
        throw new VigilError('ERR_DEVICE_TOKEN_INVALID', 'enrollment without a token', {
          status: 401,
          publicMessage: 'send Authorization: Bearer <enrollment token>',
        });
      const info = requestInfo(await readJson(request, ENROLL_BODY_LIMIT));
      sendJson(response, 200, issuedBody(await registry.enrollWithToken(token, info)));
    }),
  );
  handlers.set(
    DEVICE_PATHS.posture,
    wrap('posture', async (request, response) => {
      post(request);
      const accepted = await registry.acceptReport(await readText(request, MAX_SIGNED_REQUEST_BYTES));
      sendJson(response, 202, {
        device_id: accepted.deviceId,
        state: accepted.state,
        reported_at: new Date(accepted.reportedAt).toISOString(),
      });
    }),
  );
  handlers.set(
    DEVICE_PATHS.renew,
    wrap('renew', async (request, response) => {
      post(request);
      sendJson(
        response,
        200,
        issuedBody(await registry.renew(await readText(request, MAX_SIGNED_REQUEST_BYTES))),
      );
    }),
  );
  handlers.set(
    DEVICE_PATHS.activate,
    wrap('activate', async (request, response) => {
      const url = new URL(request.url ?? '/', 'http://vigil.invalid');
      const user = await options.whoIs(request);
      if (user === undefined) {
        const back = `${DEVICE_PATHS.activate}${url.search}`;
        response.writeHead(302, {
          location: `/.vigil/login?rd=${encodeURIComponent(back)}`,
          'cache-control': 'no-store',
        });
        response.end();
        return;
      }
      if (request.method === 'GET') {
        const code = url.searchParams.get('user_code') ?? '';
        const pending = code === '' ? undefined : await registry.pendingAuthorization(code);
        sendPage(response, 200, activatePage(code, pending, user.email ?? user.userId));
        return;
      }
      if (request.method !== 'POST') throw methodNotAllowed();
      // SameSite=Lax keeps the session cookie off cross-site POSTs; the Origin check is
      // the second lock, so no other site can make a logged-in user approve a device.
      const origin = request.headers.origin;
      if (origin === undefined || origin !== publicBase(request)) {
        sendPage(
          response,
          403,
          messagePage('Refused', 'This form must be submitted from the Vigil page itself.'),
        );
        return;
      }
      const form = new URLSearchParams(await readText(request, 4096));
      const code = normalizeUserCode(form.get('user_code') ?? '');
      const approve = form.get('decision') === 'approve';
      const done = code !== undefined && (await registry.decideAuthorization(code, user.userId, approve));
      if (!done) {
        sendPage(
          response,
          404,
          messagePage(
            'Code not found',
            'The code is unknown, expired or already used. Run vigil device enroll again.',
          ),
        );
        return;
      }
      sendPage(
        response,
        200,
        approve
          ? messagePage('Device approved', 'Return to your terminal: the device certificate is on its way.')
          : messagePage('Enrollment denied', 'The device was not enrolled.'),
      );
    }),
  );
  for (const provider of options.providers) {
    handlers.set(
      providerPath(provider.name),
      wrap(`provider:${provider.name}`, async (request, response) => {
        post(request);
        const body = await readText(request, MAX_PROVIDER_BODY_BYTES);
        const header = request.headers[PROVIDER_SIGNATURE_HEADER];
        const replayId = verifyProviderSignature(
          provider,
          Array.isArray(header) ? undefined : header,
          body,
          now(),
          registry.postureMaxSkewMs,
        );
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch {
          throw badRequest('body must be JSON');
        }
        const report = mapProviderPayload(provider, parsed);
        const device = await registry.findDevice(report.device);
        if (device === undefined) {
          sendJson(response, 202, { accepted: false, reason: 'unknown device' });
          return;
        }
        const reportedAt = Math.min(report.reportedAt ?? now(), now());
        await registry.recordPosture({
          deviceId: device.id,
          source: provider.name,
          reportedAt,
          replayId,
          data: report.data,
          vouchManaged: provider.vouchManaged,
        });
        sendJson(response, 202, { accepted: true, device_id: device.id });
      }),
    );
  }
  return handlers;
}

/** Scheme and host the client used, when no public URL is configured. */
function requestOrigin(request: IncomingMessage): string {
  const encrypted = (request.socket as { encrypted?: boolean }).encrypted === true;
  return `${encrypted ? 'https' : 'http'}://${request.headers.host ?? 'localhost'}`;
}

function sendPage(response: ServerResponse, status: number, html: string): void {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    'x-frame-options': 'DENY',
  });
  response.end(html);
}

const STYLE =
  'body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}' +
  'code{font-size:1.4rem;letter-spacing:.15rem}button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}' +
  'table{border-collapse:collapse}td{padding:.2rem .8rem .2rem 0}';

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)} · Vigil</title><style>${STYLE}</style></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function messagePage(title: string, text: string): string {
  return page(title, `<p>${escapeHtml(text)}</p>`);
}

function activatePage(
  code: string,
  pending: Awaited<ReturnType<DeviceRegistry['pendingAuthorization']>>,
  user: string,
): string {
  if (pending === undefined) {
    const hint = code === '' ? '' : '<p>That code is unknown, expired or already used.</p>';
    return page(
      'Enroll a device',
      `${hint}<form method="get"><p>Enter the code your terminal shows:</p><input name="user_code" autocomplete="off" placeholder="XXXX-XXXX"> <button>Continue</button></form>`,
    );
  }
  const rows: [string, string][] = [
    ['Device', pending.name],
    ['Platform', pending.platform ?? 'unknown'],
    ['Serial', pending.serial ?? 'unknown'],
    ['Requested', new Date(pending.createdAt).toISOString()],
    ['Signed in as', user],
  ];
  const table = rows
    .map(([key, value]) => `<tr><td>${escapeHtml(key)}</td><td>${escapeHtml(value)}</td></tr>`)
    .join('');
  return page(
    'Enroll a device',
    `<p>Only approve if you just ran <b>vigil device enroll</b> and your terminal shows this code:</p>` +
      `<p><code>${escapeHtml(pending.userCode)}</code></p><table>${table}</table>` +
      `<form method="post"><input type="hidden" name="user_code" value="${escapeHtml(pending.userCode)}">` +
      `<p><button name="decision" value="approve">Approve</button><button name="decision" value="deny">Deny</button></p></form>`,
  );
}

function deviceBody(record: DeviceRecord) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: record.id,
    name: record.name,
    user: record.userId,
    serial: record.serial,
    platform: record.platform,
    state: record.state,
    managed_by: record.managedBy,
    cert_serial: record.certSerial,
    cert_not_after: iso(record.certNotAfter),
    enrolled_at: iso(record.enrolledAt),
    revoked_at: iso(record.revokedAt),
    revoked_reason: record.revokedReason,
  };
}

const STATES: readonly DeviceState[] = ['registered', 'managed', 'revoked'];

/** Admin API of the device inventory; mounted behind admin authentication. */
export function deviceApiRoutes(registry: DeviceRegistry): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/devices',
      summary: 'List devices (?state=registered|managed|revoked, ?user=ID)',
      async handler(request) {
        const state = request.query.get('state') ?? undefined;
        if (state !== undefined && !STATES.includes(state as DeviceState))
          throw badRequest('state must be registered, managed or revoked');
        const user = request.query.get('user') ?? undefined;
        const devices = await registry.list({
          ...(state !== undefined ? { state: state as DeviceState } : {}),
          ...(user !== undefined ? { userId: user } : {}),
        });
        return { status: 200, body: { devices: devices.map(deviceBody) } };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/devices/:id',
      summary: 'One device with the latest posture of each source',
      async handler(request) {
        const id = request.params.id ?? '';
        const device = await registry.get(id);
        const posture = await registry.postureOf(id);
        return {
          status: 200,
          body: {
            ...deviceBody(device),
            posture: posture.map((report) => ({
              source: report.source,
              reported_at: new Date(report.reportedAt).toISOString(),
              ...report.data,
            })),
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/devices/:id/approve',
      summary: 'Mark a registered device managed',
      async handler(request) {
        return {
          status: 200,
          body: deviceBody(await registry.approve(request.params.id ?? '', request.principal)),
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/devices/:id/revoke',
      summary: 'Revoke a device: state, certificates and sessions ({"reason": "lost"})',
      async handler(request) {
        const body = (await request.json().catch(() => ({}))) as { reason?: unknown } | null;
        const reason = typeof body?.reason === 'string' ? body.reason : 'revoked by admin';
        return { status: 200, body: deviceBody(await registry.revoke(request.params.id ?? '', reason)) };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/devices/enrollment-tokens',
      summary: 'Create an enrollment token ({"ttl_s": 86400, "uses": 1, "managed": false, "note": ""})',
      async handler(request) {
        const body = (await request.json()) as Record<string, unknown> | null;
        if (typeof body !== 'object' || body === null) throw badRequest('body must be a JSON object');
        const ttl = body.ttl_s ?? 86_400;
        if (typeof ttl !== 'number') throw badRequest('ttl_s must be a number');
        if (body.uses !== undefined && typeof body.uses !== 'number')
          throw badRequest('uses must be a number');
        if (body.managed !== undefined && typeof body.managed !== 'boolean')
          throw badRequest('managed must be a boolean');
        if (body.note !== undefined && typeof body.note !== 'string')
          throw badRequest('note must be a string');
        const created = await registry.createEnrollmentToken({
          createdBy: request.principal,
          ttlMs: ttl * 1000,
          ...(typeof body.uses === 'number' ? { maxUses: body.uses } : {}),
          ...(body.managed === true ? { managed: true } : {}),
          ...(typeof body.note === 'string' ? { note: body.note } : {}),
        });
        return {
          status: 201,
          body: {
            id: created.id,
            token: created.token,
            expires_at: new Date(created.expiresAt).toISOString(),
            uses: created.maxUses,
            managed: created.managed,
          },
        };
      },
    },
  ];
}

import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { CertificateAuthority, caApiRoutes, DEFAULT_CSR_POLICY, loadCaSealingKey } from '../ca/index.ts';
import { ConfigWatcher, type LoadedConfig } from '../config/index.ts';
import {
  DeviceBinding,
  DeviceInventory,
  DeviceRegistry,
  deviceApiRoutes,
  deviceEndpoints,
} from '../device/index.ts';
import { isVigilError, VigilError } from '../errors.ts';
import {
  type AuthResult,
  createIdentity,
  type Identity,
  type IdentityService,
  resolveSessionKey,
  Sealer,
} from '../identity/index.ts';
import { type ApiRoute, ApiRouter, readJson, sendJson } from '../internal/http.ts';
import { constantTimeEqual } from '../internal/secrets.ts';
import { AssertionKeyRing, type RequestIdentity } from '../proxy/index.ts';
import { openStore, redactUrl, type Store } from '../store/index.ts';
import {
  Counter,
  createLogger,
  createMetricsRegistry,
  Gauge,
  type Logger,
  type Registry,
} from '../telemetry/index.ts';
import { resolveAdminToken } from './admin-token.ts';
import { type ServingAudit, startAudit } from './audit.ts';
import { redirectToHttps } from './https-redirect.ts';
import { createListener, drain, listen, urlOf } from './listeners.ts';
import { openApiDocument } from './openapi.ts';
import { type ServingPolicies, startPolicies } from './policies.ts';
import { type ProxyWiring, type ServingProxy, startProxy } from './proxy.ts';
import { VERSION } from './version.ts';

export interface StartServerOptions {
  logger?: Logger;
  env?: Readonly<Record<string, string | undefined>>;
  /** Watch the config file and SIGHUP for reloads (the CLI does; embedded tests may not). */
  watchConfig?: boolean;
}

export interface RunningServer {
  readonly proxyUrl: string;
  readonly adminUrl: string;
  readonly store: Store;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly config: ConfigWatcher;
  /** Drains both listeners, then closes the store. Safe to call twice. */
  close(): Promise<void>;
}

const READY_PING_TIMEOUT_MS = 1000;

/** The composition root of `vigil server`: wires capabilities to listeners. */
export async function startServer(
  loaded: LoadedConfig,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const { config } = loaded;
  const logger = options.logger ?? createLogger({ level: config.log.level, format: config.log.format });
  const metrics = createMetricsRegistry();
  new Gauge({
    name: 'vigil_build_info',
    help: 'Vigil version',
    labelNames: ['version'],
    registers: [metrics],
  })
    .labels(VERSION)
    .set(1);
  const reloads = new Counter({
    name: 'vigil_config_reloads_total',
    help: 'Config reloads by result',
    labelNames: ['result'],
    registers: [metrics],
  });

  const dataDir = config.server.data_dir;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const databaseUrl = config.database.url ?? `sqlite://${join(dataDir, 'vigil.db')}`;
  const store = await openStore(databaseUrl, { dataDir });
  // What has started, stopped in reverse order when a later step fails: a server that
  // cannot start leaves nothing open (timers, watchers, connections) behind.
  const started: (() => unknown)[] = [() => store.close()];
  const step = async <T>(run: () => T | Promise<T>, stop?: (value: T) => unknown): Promise<T> => {
    let value: T;
    try {
      value = await run();
    } catch (error) {
      for (const undo of started.reverse())
        await Promise.resolve()
          .then(undo)
          .catch(() => {});
      throw error;
    }
    if (stop) started.push(() => stop(value));
    return value;
  };
  logger.info({ database: redactUrl(databaseUrl), dialect: store.dialect }, 'store ready');
  new Gauge({
    name: 'vigil_devices',
    help: 'Devices in the inventory by state (registered, managed, revoked)',
    labelNames: ['state'],
    registers: [metrics],
    // Read at scrape time from the store: a metric query, never the request path.
    async collect() {
      const rows = await store.db
        .selectFrom('devices')
        .select(['state', (eb) => eb.fn.countAll<number>().as('count')])
        .groupBy('state')
        .execute();
      this.reset();
      for (const state of ['registered', 'managed', 'revoked']) this.labels(state).set(0);
      for (const row of rows) this.labels(row.state).set(Number(row.count));
    },
  });

  const adminToken = await step(() => resolveAdminToken(config.admin.token_file?.reveal(), dataDir));
  if (!config.admin.token_file)
    logger.info({ path: adminToken.path }, 'admin API token (generated on first start)');

  // Policies load before the audit log starts; reloads after that are recorded.
  let auditRef: ServingAudit | undefined;
  const policies: ServingPolicies = await step(
    () =>
      startPolicies(loaded, {
        logger,
        metrics,
        watch: options.watchConfig === true,
        onLoaded: (files) => auditRef?.admin('policy.reloaded', files.join(',') || '(none)', { files }),
      }),
    (started) => started.close(),
  );
  const identity: IdentityService = await step(
    () => createIdentity({ config, store, logger, dataDir, metrics }),
    (started) => started.close(),
  );

  const watcher = new ConfigWatcher(loaded, { env: options.env ?? process.env, logger });
  watcher.onChange((next) => {
    reloads.labels('ok').inc();
    void policies.reload(next);
  });

  const router = new ApiRouter();
  const startedAt = Date.now();
  const statusRoute: ApiRoute = {
    method: 'GET',
    path: '/api/v1/status',
    summary: 'Version, uptime, store and config of this replica',
    handler: () => ({
      status: 200,
      body: {
        version: VERSION,
        uptime_s: Math.round((Date.now() - startedAt) / 1000),
        store: store.dialect,
        config: watcher.current.path,
        routes: watcher.current.config.routes.map((route) => ({
          name: route.name,
          from: route.from,
          mode: route.mode,
        })),
      },
    }),
  };
  const audit = await step(
    () => startAudit(loaded, { store, logger, metrics }),
    (started) => started.close(),
  );
  auditRef = audit;
  let ca: CertificateAuthority | undefined;
  if (config.ca) {
    const settings = config.ca;
    ca = await step(
      () =>
        CertificateAuthority.open({
          store,
          sealingKey: loadCaSealingKey(settings.key_file, options.env ?? process.env),
          csrPolicy: { ...DEFAULT_CSR_POLICY, allowRsa: settings.allow_rsa },
          defaultTtlMs: { device: settings.device_ttl, workload: settings.workload_ttl },
          onError: (error) =>
            logger.error({ err: error }, 'CA update from another replica failed; the last good state serves'),
        }),
      (started) => started.close(),
    );
    logger.info('internal CA ready');
  }
  // Device trust stands on the CA: certificates are the device's identity.
  let devices: { registry: DeviceRegistry; inventory: DeviceInventory; binding: DeviceBinding } | undefined;
  if (ca) {
    const inventory = await step(
      () => DeviceInventory.open(store, { logger }),
      (started) => started.close(),
    );
    const registry = new DeviceRegistry({
      store,
      ca,
      autoApprove: config.devices.auto_approve,
      authorizationTtlMs: config.devices.authorization_ttl,
      postureMaxSkewMs: config.devices.posture_max_skew,
      onRevoked: (deviceId, reason) => identity.sessions.revokeDevice(deviceId, `device revoked: ${reason}`),
    });
    devices = { registry, inventory, binding: new DeviceBinding({ ca, inventory }) };
    logger.info({ devices: inventory.size }, 'device inventory ready');
  } else if (config.devices.providers.length > 0) {
    logger.warn(
      { providers: config.devices.providers.map((provider) => provider.name) },
      'devices.providers are configured but device trust needs the internal CA: add ca to vigil.yaml',
    );
  }
  // The keys signing X-Vigil-Assertion are shared by every replica through the store,
  // sealed with the session key (which replicas share already, for cookies). A replica
  // that cannot load them does not start: upstreams could verify nothing it signs.
  const assertionKeys = await step(
    () =>
      AssertionKeyRing.open({
        store,
        sealer: new Sealer(
          resolveSessionKey(config.session.secret_file?.reveal(), dataDir).key,
          'assertion signing key',
        ),
        onError: (error) =>
          logger.error({ err: error }, 'assertion keys reload failed; signing with the keys in memory'),
      }),
    (started) => started.close(),
  );
  router.add(
    statusRoute,
    ...policies.routes,
    ...identity.adminRoutes,
    ...audit.routes,
    ...(ca ? caApiRoutes(ca) : []),
    ...(devices ? deviceApiRoutes(devices.registry) : []),
  );

  const admin = createListener(
    (request, response) =>
      void handleAdmin(request, response, { router, store, metrics, logger, token: adminToken.token }),
    undefined,
  );
  // Session cookie or bearer JWT; a request without either is anonymous, and only
  // routes whose policy allows anonymous requests (none, by default deny) let it through.
  const secure = config.server.tls !== undefined || (config.server.public_url ?? '').startsWith('https:');
  // Per-route authentication options, built once per config rather than per request.
  const NO_OPTIONS = Object.freeze({});
  const authOptionsOf = (routes: LoadedConfig['config']['routes']) =>
    new Map(
      routes.flatMap((route) =>
        route.reauth_after === undefined
          ? []
          : [[route.name, Object.freeze({ reauthAfterMs: route.reauth_after })]],
      ),
    );
  let authOptions = authOptionsOf(config.routes);
  watcher.onChange((next) => {
    authOptions = authOptionsOf(next.config.routes);
  });
  const binding = devices?.binding;
  // Identities are frozen and replaced when they change, so the proxy's view of one
  // (without a device) is made once, not per request.
  const withoutDevice = new WeakMap<Identity, RequestIdentity>();
  const toRequestIdentity = (result: AuthResult, request: IncomingMessage): RequestIdentity | undefined => {
    const found = result.identity;
    if (found === undefined) return undefined;
    let plain = withoutDevice.get(found);
    if (plain === undefined) {
      const { userId, email, groups, claims, amr, authTime } = found;
      plain = { key: found.key, user: { id: userId, email, groups, claims, amr, authTime } };
      withoutDevice.set(found, plain);
    }
    const { user } = plain;
    const peer = binding?.resolve(request).device;
    // A device enrolled by another user does not vouch for this one (a stolen cookie or
    // token used from the thief's own device).
    const device = peer === undefined ? undefined : devices?.inventory.getFor(peer.id, user.id);
    if (device === undefined) return plain;
    if (found.sessionId !== undefined && found.deviceId === undefined) {
      identity.sessions
        .bindDevice(found.sessionId, device.id)
        .catch((error: unknown) => logger.warn({ err: error }, 'binding a session to its device failed'));
    } else if (found.deviceId !== undefined && found.deviceId !== device.id) {
      // A session bound to one device used from another: its cookie travelled. No device.
      return plain;
    }
    return { key: found.key, user, device };
  };
  const proxyWiring: ProxyWiring = {
    authenticate: (request, routeName) => {
      const options = (routeName === undefined ? undefined : authOptions.get(routeName)) ?? NO_OPTIONS;
      const result = identity.authenticate(request, options);
      return result instanceof Promise
        ? result.then((settled) => toRequestIdentity(settled, request))
        : toRequestIdentity(result, request);
    },
    reserved: new Map([
      ...identity.reservedHandlers(secure),
      ...(devices
        ? deviceEndpoints({
            registry: devices.registry,
            providers: config.devices.providers.map((provider) => ({
              name: provider.name,
              secret: provider.secret_file.reveal(),
              format: provider.format,
              vouchManaged: provider.vouch_managed,
            })),
            whoIs: async (request) => {
              const found = (await identity.authenticate(request, NO_OPTIONS)).identity;
              return found === undefined ? undefined : { userId: found.userId, email: found.email };
            },
            logger,
            publicUrl: config.server.public_url,
            metrics,
            sourceIp: (request) => serving?.proxy.sourceIpOf(request),
          })
        : []),
    ]),
    record: audit.record,
    ...(binding ? { peerRefusal: (request: IncomingMessage) => binding.resolve(request).refused } : {}),
  };
  let serving: ServingProxy | undefined;
  const proxy = createListener(
    (request, response) => {
      if (serving) serving.proxy.handle(request, response);
      else sendJson(response, 503, { error: 'starting' });
    },
    config.server.tls,
    ca?.bundlePem(),
    config.server.request_timeout,
  );
  const tlsFailures = new Counter({
    name: 'vigil_tls_handshake_failures_total',
    help: 'TLS handshakes that failed on the proxy listener (bad or revoked client certificates, protocol errors)',
    registers: [metrics],
  });
  proxy.on('tlsClientError', () => tlsFailures.inc());
  proxy.on('upgrade', (request, socket, head) => {
    if (serving) serving.proxy.handleUpgrade(request, socket, head);
    else socket.destroy();
  });

  const adminInfo = await step(
    () => listen(admin, config.server.admin_listen, 'admin'),
    () => admin.close(),
  );
  const proxyInfo = await step(
    () => listen(proxy, config.server.proxy_listen, 'proxy'),
    () => proxy.close(),
  );

  const redirect = config.server.http_redirect_listen
    ? createListener(
        (request, response) =>
          redirectToHttps(request, response, {
            listenerPort: proxyInfo.port,
            routes: watcher.current.config.routes,
            publicUrl: watcher.current.config.server.public_url,
          }),
        undefined,
      )
    : undefined;
  const redirectListen = config.server.http_redirect_listen;
  if (redirect && redirectListen) {
    await step(
      () => listen(redirect, redirectListen, 'http_redirect'),
      () => redirect.close(),
    );
  }

  const adminUrl = urlOf(adminInfo, false);
  const proxyUrl = urlOf(proxyInfo, config.server.tls !== undefined);
  await step(() => identity.attach(config.server.public_url ?? proxyUrl));
  serving = await step(
    () =>
      startProxy(loaded, {
        policies: policies.store,
        issuer: config.server.public_url ?? proxyUrl,
        keys: assertionKeys,
        logger,
        metrics,
        wiring: proxyWiring,
      }),
    (started) => started.close(),
  );
  const servingProxy = serving;
  // A revoked session, device or certificate also ends its open WebSockets, on every
  // replica: the change feed tells each one, after identity has updated its state.
  const revalidate = () =>
    setImmediate(() => {
      servingProxy.proxy
        .revalidateConnections()
        .catch((error: unknown) => logger.warn({ err: error }, 'revalidating connections failed'));
    });
  for (const channel of ['session', 'device', 'posture', 'revocation'] as const)
    store.changes.subscribe(channel, (event) => {
      if (event.action !== 'seen' && event.action !== 'created') revalidate();
    });
  watcher.onChange((next) => servingProxy.reconfigure(next));
  // Last: a watcher started earlier would keep a server that failed to start alive.
  if (options.watchConfig) watcher.start();
  logger.info({ proxy: proxyUrl, admin: adminUrl }, 'vigil server listening');

  let closing: Promise<void> | undefined;
  return {
    proxyUrl,
    adminUrl,
    store,
    logger,
    metrics,
    config: watcher,
    close() {
      closing ??= (async () => {
        watcher.stop();
        policies.close();
        const timeout = watcher.current.config.server.shutdown_timeout;
        await Promise.all([
          drain(proxy, timeout, () => servingProxy.proxy.closeUpgraded()),
          drain(admin, timeout),
          ...(redirect ? [drain(redirect, timeout)] : []),
        ]);
        await servingProxy.close();
        assertionKeys.close();
        await identity.close();
        // Flushes what is queued: every acknowledged decision is on disk before exit.
        await audit.close();
        devices?.inventory.close();
        ca?.close();
        await store.close();
        logger.info('vigil server stopped');
        logger.flush();
      })();
      return closing;
    },
  };
}

interface AdminContext {
  router: ApiRouter;
  store: Store;
  metrics: Registry;
  logger: Logger;
  token: string;
}

async function handleAdmin(
  request: IncomingMessage,
  response: ServerResponse,
  context: AdminContext,
): Promise<void> {
  const requestId = randomUUID();
  const url = new URL(request.url ?? '/', 'http://admin.invalid');
  const method = request.method ?? 'GET';
  try {
    if (url.pathname === '/healthz' && method === 'GET') {
      sendJson(response, 200, { status: 'ok' });
      return;
    }
    if (url.pathname === '/readyz' && method === 'GET') {
      try {
        await context.store.ping(READY_PING_TIMEOUT_MS);
        sendJson(response, 200, { status: 'ready', store: 'ok' });
      } catch {
        sendJson(response, 503, { status: 'not-ready', store: 'unreachable' });
      }
      return;
    }
    if (url.pathname === '/metrics' && method === 'GET') {
      const text = await context.metrics.metrics();
      response.writeHead(200, { 'content-type': context.metrics.contentType });
      response.end(text);
      return;
    }
    if (url.pathname === '/api/v1/openapi.json' && method === 'GET') {
      sendJson(response, 200, openApiDocument(context.router.routes));
      return;
    }
    if (!url.pathname.startsWith('/api/v1/')) throw notFound();

    const principal = authenticateAdmin(request, context.token);
    const matched = context.router.match(method, url.pathname);
    if (matched === undefined) throw notFound();
    if (matched === 'method-not-allowed') {
      sendJson(response, 405, { error: 'method-not-allowed', request_id: requestId });
      return;
    }
    let body: Promise<unknown> | undefined;
    const result = await matched.route.handler({
      method,
      path: url.pathname,
      params: matched.params,
      query: url.searchParams,
      headers: request.headers,
      principal,
      json: () => {
        body ??= readJson(request);
        return body;
      },
    });
    sendJson(response, result.status, result.body ?? null, result.headers);
  } catch (error) {
    const status = isVigilError(error) ? error.status : 500;
    if (status >= 500) context.logger.error({ err: error, request_id: requestId }, 'admin API error');
    const message = isVigilError(error) ? error.publicMessage : 'internal error';
    const code = isVigilError(error) ? error.code : 'ERR_INTERNAL';
    const headers: Record<string, string> =
      status === 401 ? { 'www-authenticate': 'Bearer realm="vigil-admin"' } : {};
    if (!response.headersSent)
      sendJson(response, status, { error: code, message, request_id: requestId }, headers);
    else response.destroy();
  }
}

function authenticateAdmin(request: IncomingMessage, token: string): string {
  const header = request.headers.authorization ?? '';
  const presented = /^Bearer (\S+)$/i.exec(header)?.[1];
  if (presented === undefined || !constantTimeEqual(presented, token)) {
    throw new VigilError('ERR_ADMIN_UNAUTHENTICATED', 'admin API call without a valid token', {
      status: 401,
      publicMessage: 'send Authorization: Bearer <admin token>',
    });
  }
  return 'admin-token';
}

function notFound(): VigilError {
  return new VigilError('ERR_HTTP_NOT_FOUND', 'no such admin endpoint', {
    status: 404,
    publicMessage: 'not found',
  });
}

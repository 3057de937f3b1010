import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import {
  type AuditLog,
  afterHoursDetector,
  auditApiRoutes,
  bruteForceDetector,
  createAuditLog,
  lateralMovementDetector,
  newDeviceDetector,
  postureDetector,
  registerAuditMetrics,
  syslogSink,
  tokenReplayDetector,
  webhookSink,
} from '../audit/index.ts';
import type { LoadedConfig } from '../config/index.ts';
import type { ApiRoute } from '../internal/http.ts';
import { readOrCreateSecretFile } from '../internal/secrets.ts';
import type { ProxyDecisionRecord } from '../proxy/index.ts';
import type { Store } from '../store/index.ts';
import type { Logger, Registry } from '../telemetry/index.ts';

export interface ServingAudit {
  readonly log: AuditLog;
  /** Records an administrative change (policy reloaded, config reloaded …). */
  admin(action: string, target: string, details?: Record<string, unknown>): void;
  readonly routes: ApiRoute[];
  /** The proxy's record hook: false when the queue refuses the event (fail closed). */
  record(entry: ProxyDecisionRecord): boolean;
  close(): Promise<void>;
}

/**
 * The audit log key signs checkpoints of the hash chain. Like the admin token it is
 * generated on first start into the data dir (0600) unless it already exists.
 */
function auditKey(dataDir: string): KeyObject {
  const pem = readOrCreateSecretFile(join(dataDir, 'audit-key.pem'), () =>
    generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString(),
  );
  return createPrivateKey(pem);
}

/** Change-feed events that are administrative actions, and how the log names them. */
const ADMIN_ACTIONS: Readonly<Record<string, string>> = {
  'session:created': 'session.created',
  'session:revoked': 'session.revoked',
  'session:revoked-user': 'session.revoked',
  'session:revoked-device': 'session.revoked',
  'revocation:revoked': 'certificate.revoked',
  'key:ca-rotated': 'ca.rotated',
  'device:enrolled': 'device.enrolled',
  'device:revoked': 'device.revoked',
  'device:approved': 'device.approved',
  'device:token-created': 'device.token-created',
};

/** The audit capability as the server runs it: writer, detectors, metrics, API. */
export function startAudit(
  loaded: LoadedConfig,
  options: { store: Store; logger: Logger; metrics: Registry },
): ServingAudit {
  const settings = loaded.config.audit;
  const log = createAuditLog(options.store, {
    logger: options.logger,
    onFull: settings.on_full,
    queueLimit: settings.queue_limit,
    signer: { privateKey: auditKey(loaded.config.server.data_dir), kid: 'audit' },
    detectors: [
      bruteForceDetector({
        threshold: settings.detectors.brute_force.threshold,
        windowMs: settings.detectors.brute_force.window,
      }),
      lateralMovementDetector({
        maxRoutes: settings.detectors.lateral_movement.max_routes,
        maxDeniedRoutes: settings.detectors.lateral_movement.max_denied_routes,
        windowMs: settings.detectors.lateral_movement.window,
      }),
      tokenReplayDetector({ windowMs: settings.detectors.token_replay.window }),
      postureDetector(),
      newDeviceDetector(),
      ...(settings.detectors.after_hours
        ? [
            afterHoursDetector({
              timeZone: settings.detectors.after_hours.time_zone,
              workdays: settings.detectors.after_hours.workdays,
              start: settings.detectors.after_hours.start,
              end: settings.detectors.after_hours.end,
            }),
          ]
        : []),
    ],
    sinks: [
      ...settings.webhooks.map((hook) =>
        webhookSink({ url: hook.url, secret: hook.secret_file.reveal(), kinds: hook.kinds }),
      ),
      ...settings.syslog.map((target) =>
        syslogSink({ host: target.host, port: target.port, protocol: target.protocol }),
      ),
    ],
  });
  registerAuditMetrics(options.metrics, log);
  const admin = (action: string, target: string, details?: Record<string, unknown>, actor = 'system') => {
    log.enqueue({
      kind: 'admin',
      time: Date.now(),
      actor,
      action,
      target,
      ...(details !== undefined ? { details } : {}),
    });
  };
  // Session, device and certificate changes made by this replica become admin events.
  // Each replica hears every change on the feed but records only its own, so a change
  // is in the log once.
  const changes = options.store.changes;
  const unsubscribe = changes.subscribe('*', (event) => {
    if (event.origin !== changes.origin) return;
    const action = ADMIN_ACTIONS[`${event.channel}:${event.action}`];
    if (action === undefined) return;
    const target = event.id ?? String(Object.values(event.data ?? {})[0] ?? event.channel);
    admin(action, target, event.data);
  });
  return {
    log,
    routes: auditApiRoutes(log),
    record: (entry) => log.enqueueDecision(entry),
    admin: (action, target, details) => admin(action, target, details),
    close: () => {
      unsubscribe();
      return log.close();
    },
  };
}

/**
 * The audit log: append-only, hash-chained, with signed checkpoints, queries, exports,
 * detectors and alert delivery. The only door into src/audit/.
 */
export { auditApiRoutes } from './api.ts';
export { canonicalJson } from './canonical.ts';
export { chainEnvelope, chainHash, GENESIS_HASH } from './chain.ts';
export { type AuditKey, type CheckpointSigner, checkpointSignerFromFile } from './checkpoint.ts';
export {
  type AlertInput,
  DEFAULT_ALERT_DEDUPE_MS,
  type Detector,
  type DetectorReport,
} from './detect.ts';
export { AFTER_HOURS_DEFAULTS, type AfterHoursOptions, afterHoursDetector } from './detectors/after-hours.ts';
export { BRUTE_FORCE_DEFAULTS, type BruteForceOptions, bruteForceDetector } from './detectors/brute-force.ts';
export {
  LATERAL_MOVEMENT_DEFAULTS,
  type LateralMovementOptions,
  lateralMovementDetector,
} from './detectors/lateral-movement.ts';
export { NEW_DEVICE_DEFAULTS, type NewDeviceOptions, newDeviceDetector } from './detectors/new-device.ts';
export { postureDetector } from './detectors/posture.ts';
export {
  TOKEN_REPLAY_DEFAULTS,
  type TokenReplayOptions,
  tokenReplayDetector,
} from './detectors/token-replay.ts';
export {
  type AdminEvent,
  type AlertEvent,
  type AuditEvent,
  type AuditEventKind,
  type AuditRecord,
  adminEventSchema,
  alertEventSchema,
  auditEventSchema,
  type DecisionEvent,
  type DecisionFacts,
  decisionEvent,
  decisionEventSchema,
  EVENT_KINDS,
  RISK_FLAGS,
  type RiskFlag,
} from './events.ts';
export { registerAuditMetrics } from './metrics.ts';
export {
  type AuditPage,
  type AuditQuery,
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  parseAuditQuery,
  queryEvents,
} from './query.ts';
export type { AuditSink, SinkEntry } from './sink.ts';
export { formatSyslogMessage, SYSLOG_DEFAULTS, type SyslogSinkOptions, syslogSink } from './sinks/syslog.ts';
export {
  verifyWebhookSignature,
  WEBHOOK_DEFAULTS,
  type WebhookSinkOptions,
  webhookSignature,
  webhookSink,
} from './sinks/webhook.ts';
export {
  type ChainProblem,
  type ChainProblemKind,
  type VerifyOptions,
  type VerifyResult,
  verifyChain,
} from './verify.ts';
export {
  type AuditLog,
  type AuditLogOptions,
  type AuditLogStats,
  createAuditLog,
  DEFAULT_BATCH_SIZE,
  DEFAULT_CHECKPOINT_EVERY,
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_QUEUE_LIMIT,
  type OnFull,
} from './writer.ts';

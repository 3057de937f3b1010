export { type AssertionClaims, AssertionSigner, type AssertionSignerOptions } from './assertion.ts';
export {
  AssertionKeyRing,
  type AssertionKeyRingOptions,
  type AssertionKeySealer,
  type AssertionSigningKey,
  DEFAULT_ASSERTION_KEY_OVERLAP_MS,
  DEFAULT_ASSERTION_KEY_PREPUBLISH_MS,
  DEFAULT_ASSERTION_KEY_RELOAD_MS,
  DEFAULT_ASSERTION_KEY_ROTATION_MS,
} from './assertion-keys.ts';
export { AccessLimiter, type LimitSettings, type LimitVerdict } from './limits.ts';
export { type NormalizedTarget, normalizeTarget, type TargetProblem } from './path.ts';
export {
  AccessProxy,
  type Authenticator,
  DEFAULT_MAX_BODY_BYTES,
  hostOf,
  type ProxyDecisionRecord,
  type ProxyOptions,
  type RequestIdentity,
} from './proxy.ts';
export {
  DEFAULT_SYNC_MS,
  MemoryWindowCounter,
  RedisWindowCounter,
  type WindowCounter,
} from './rate-limit.ts';
export { UPSTREAM_DOWN_MS, type Upstream, UpstreamGroup, type UpstreamOptions } from './upstreams.ts';

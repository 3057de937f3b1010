export { type AssertionClaims, AssertionSigner, type AssertionSignerOptions } from './assertion.ts';
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

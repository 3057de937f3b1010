export { type AssertionClaims, AssertionSigner, type AssertionSignerOptions } from './assertion.ts';
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
export { type Upstream, UpstreamGroup, type UpstreamOptions } from './upstreams.ts';

export type { Identity } from './identity.ts';
export { JwtVerifier, MAX_TOKEN_BYTES, type TrustedIssuer, type VerifyResult } from './jwt.ts';
export type { IdentityReason, LoginFailureReason } from './reasons.ts';
export { Sealer } from './seal.ts';
export { resolveSessionKey } from './session-key.ts';
export {
  LAST_SEEN_FLUSH_MS,
  type NewSession,
  type Refresher,
  type RefreshOutcome,
  SessionManager,
  type SessionPolicy,
  type SessionView,
} from './sessions.ts';

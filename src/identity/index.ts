export { DEFAULT_DEV_USERS, type DevClient, type DevIdp, type DevUser, startDevIdp } from './dev-idp.ts';
export type { Identity } from './identity.ts';
export { JwtVerifier, MAX_TOKEN_BYTES, type TrustedIssuer, type VerifyResult } from './jwt.ts';
export { OidcProvider, type OidcProviderOptions } from './oidc.ts';
export type { IdentityReason, LoginFailureReason } from './reasons.ts';
export { safeReturnPath } from './return-path.ts';
export { Sealer } from './seal.ts';
export {
  type AuthenticateOptions,
  type AuthResult,
  type CreateIdentityOptions,
  createIdentity,
  type IdentityService,
  LOGIN_STATE_TTL_MS,
} from './service.ts';
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

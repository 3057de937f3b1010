export type { Identity } from './identity.ts';
export { JwtVerifier, MAX_TOKEN_BYTES, type TrustedIssuer, type VerifyResult } from './jwt.ts';
export type { IdentityReason, LoginFailureReason } from './reasons.ts';

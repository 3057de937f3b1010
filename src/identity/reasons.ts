/**
 * Why an identity was not established. A closed union of kebab-case codes shared by
 * the proxy, the audit log and the console; logs carry the code, never the credential.
 */
export type IdentityReason =
  // No credential at all: the proxy sends browsers to login.
  | 'credential-missing'
  // Bearer JWT
  | 'token-too-large'
  | 'token-malformed'
  | 'token-payload-invalid'
  | 'token-unsigned'
  | 'token-alg-not-allowed'
  | 'token-key-in-header'
  | 'token-typ-mismatch'
  | 'token-issuer-unknown'
  | 'token-issuer-mismatch'
  | 'token-audience-mismatch'
  | 'token-expired'
  | 'token-not-yet-valid'
  | 'token-iat-invalid'
  | 'token-claim-invalid'
  | 'token-key-unknown'
  | 'token-signature-invalid'
  | 'token-subject-missing'
  | 'token-invalid'
  // A new bearer token is being verified in the background; a synchronous caller denies this once.
  | 'token-not-yet-verified'
  | 'idp-unavailable'
  // Session cookie
  | 'session-cookie-invalid'
  | 'session-unknown'
  | 'session-revoked'
  | 'session-expired'
  | 'session-idle'
  | 'session-reauth-required';

/** Why a login (authorization code flow) was refused. */
export type LoginFailureReason =
  | 'login-idp-unknown'
  | 'login-return-invalid'
  | 'login-state-missing'
  | 'login-state-mismatch'
  | 'login-state-replayed'
  | 'login-state-expired'
  | 'login-nonce-mismatch'
  | 'login-code-rejected'
  | 'login-idp-error'
  | 'login-token-invalid'
  | 'idp-unavailable';

/** Who made a request, as the proxy and the policy engine see it. */
export interface Identity {
  /** How the identity was established. */
  kind: 'session' | 'bearer';
  /**
   * Stable key of the credential, for per-credential caches (`session:<id>`, or
   * `bearer:<sha256 of the token>`); never the credential itself.
   */
  key: string;
  /** `<idp>:<user id claim>`, stable across email changes; the users table key. */
  userId: string;
  /** The user id claim as the IdP sent it. */
  subject: string;
  /** Name of the identity provider (config `identity_providers[].name`). */
  idp: string;
  email: string | undefined;
  groups: readonly string[];
  /** Authentication methods (`pwd`, `mfa`, `otp` …); `mfa` present means MFA was used. */
  amr: readonly string[];
  acr: string | undefined;
  /** When the user last authenticated at the IdP, epoch ms. */
  authTime: number;
  /** When this identity stops being valid (token exp or session expiry), epoch ms. */
  expiresAt: number;
  /** Session id for cookie sessions; undefined for bearer tokens. */
  sessionId: string | undefined;
  deviceId: string | undefined;
  /** Every claim of the token or the login's ID token, for policy conditions. */
  claims: Readonly<Record<string, unknown>>;
}

import type { Generated } from 'kysely';

/**
 * Tables, shared by SQLite and PostgreSQL. Times are epoch milliseconds (bigint in
 * PostgreSQL, read back as numbers); lists and objects are JSON text so that one set of
 * migrations serves both dialects.
 */
export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  devices: DevicesTable;
  posture_reports: PostureReportsTable;
  device_enrollment_tokens: DeviceEnrollmentTokensTable;
  device_authorizations: DeviceAuthorizationsTable;
  device_posture: DevicePostureTable;
  policy_versions: PolicyVersionsTable;
  audit_events: AuditEventsTable;
  audit_checkpoints: AuditCheckpointsTable;
  signing_keys: SigningKeysTable;
  ca_authorities: CaAuthoritiesTable;
  ca_certificates: CaCertificatesTable;
}

export interface UsersTable {
  /** `<idp>:<subject>`, stable across email changes. */
  id: string;
  idp: string;
  subject: string;
  email: string | null;
  name: string | null;
  groups_json: string;
  first_seen_at: number;
  last_seen_at: number;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  idp: string;
  groups_json: string;
  amr_json: string;
  claims_json: string;
  device_id: string | null;
  auth_time: number;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
  /** Refresh token, encrypted with the session key; null when the IdP gave none. */
  refresh_token_enc: string | null;
}

export interface DevicesTable {
  id: string;
  user_id: string | null;
  name: string;
  serial: string | null;
  /** registered | managed | revoked */
  state: string;
  cert_serial: string | null;
  cert_not_after: number | null;
  enrolled_at: number;
  updated_at: number;
  revoked_at: number | null;
  /** The current device certificate, PEM; posture reports are verified against its key. */
  cert_pem: string | null;
  /** linux | macos, as the device said at enrollment. */
  platform: string | null;
  /** Who made the device managed: admin, token:<id>, auto or provider:<name>. */
  managed_by: string | null;
  revoked_reason: string | null;
}

/** Latest posture per device and source; the inventory merges the sources. */
export interface DevicePostureTable {
  device_id: string;
  source: string;
  reported_at: number;
  received_at: number;
  data_json: string;
}

export interface DeviceEnrollmentTokensTable {
  id: string;
  token_sha256: string;
  created_by: string;
  note: string | null;
  /** 1: devices enrolled with it start managed (the admin vouched for them). */
  managed: number;
  max_uses: number;
  uses: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface DeviceAuthorizationsTable {
  id: string;
  device_code_sha256: string;
  user_code: string;
  name: string;
  serial: string | null;
  platform: string | null;
  csr_pem: string;
  /** pending | approved | denied | issued */
  status: string;
  /** Who approved it. */
  user_id: string | null;
  device_id: string | null;
  created_at: number;
  expires_at: number;
  polled_at: number | null;
}

export interface PostureReportsTable {
  id: string;
  device_id: string;
  /** `agent` or the name of a posture provider. */
  source: string;
  reported_at: number;
  received_at: number;
  data_json: string;
}

export interface PolicyVersionsTable {
  id: string;
  name: string;
  content: string;
  sha256: string;
  created_at: number;
  created_by: string | null;
}

export interface AuditEventsTable {
  seq: number;
  id: string;
  time: number;
  kind: string;
  data_json: string;
  prev_hash: string;
  hash: string;
}

export interface AuditCheckpointsTable {
  seq: number;
  hash: string;
  signature: string;
  created_at: number;
}

export interface SigningKeysTable {
  kid: string;
  /** What the key signs: assertion, audit, session, ca-intermediate … */
  purpose: string;
  algorithm: string;
  public_jwk_json: string;
  /** Private key, encrypted at rest; never stored in clear. */
  private_enc: string;
  created_at: number;
  /** When a retired key leaves the published JWKS; null while the key is current. */
  not_after: number | null;
  /** current | retired */
  state: string;
  /** 1, 2, … per purpose (unique): the highest active one is the current key. */
  generation: number;
  /** When the key starts signing; published before that. Null: from created_at. */
  active_from: number | null;
}

export interface CaAuthoritiesTable {
  id: string;
  /** root | intermediate */
  kind: string;
  /** current | next | retired */
  slot: string;
  trust_domain: string;
  /** ecdsa-p256 | ed25519 (upstream imports may carry others) */
  algorithm: string;
  cert_pem: string;
  /** PKCS#8 private key sealed with AES-256-GCM; null when the key is held offline. */
  key_enc: string | null;
  /** SHA-256 of the certificate's DER, hex. */
  fingerprint: string;
  not_before: number;
  not_after: number;
  /** For a retired intermediate: when its last leaf expires and it may leave the bundle. */
  bundle_until: number | null;
  created_at: number;
  updated_at: number;
}

export interface CaCertificatesTable {
  /** Lowercase hex without leading zeros. */
  serial: string;
  /** device | workload */
  kind: string;
  /** Device id or workload path the certificate was issued for. */
  subject: string;
  spiffe_id: string;
  /** ca_authorities.id of the intermediate that signed it. */
  issuer_id: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

/** For inserts that let the database assign a column. */
export type Assigned<T> = Generated<T>;

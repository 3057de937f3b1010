/**
 * The one error type Vigil throws for failures a user or operator can act on.
 *
 * `publicMessage` is safe to show to an HTTP client; `message` and `cause` are for logs.
 * Neither ever contains a credential (token, key, secret). Codes are listed in
 * docs/errors.md and never reused for another meaning.
 */
export type VigilErrorCode =
  | 'ERR_CONFIG_NOT_FOUND'
  | 'ERR_CONFIG_YAML'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_STORE_URL'
  | 'ERR_STORE_UNAVAILABLE'
  | 'ERR_STORE_MIGRATION'
  | 'ERR_POLICY_INVALID'
  | 'ERR_POLICY_TEST_FAILED'
  | 'ERR_POLICY_INPUT_INVALID'
  | 'ERR_CLI_USAGE'
  | 'ERR_AUDIT_WRITE_FAILED'
  | 'ERR_AUDIT_CHAIN_BROKEN'
  | 'ERR_AUDIT_QUERY_INVALID'
  | 'ERR_AUDIT_KEY_INVALID'
  | 'ERR_HTTP_BAD_REQUEST'
  | 'ERR_HTTP_BODY_TOO_LARGE'
  | 'ERR_HTTP_NOT_FOUND'
  | 'ERR_ADMIN_UNAUTHENTICATED'
  | 'ERR_SERVER_LISTEN'
  | 'ERR_IDENTITY_TOKEN_INVALID'
  | 'ERR_IDENTITY_IDP_UNAVAILABLE'
  | 'ERR_IDENTITY_LOGIN_FAILED'
  | 'ERR_IDENTITY_PROVIDER_UNKNOWN'
  | 'ERR_IDENTITY_CONFIG'
  | 'ERR_SESSION_INVALID'
  | 'ERR_SESSION_NOT_FOUND'
  | 'ERR_SESSION_KEY'
  | 'ERR_ASSERTION_KEYS_UNAVAILABLE'
  | 'ERR_ASSERTION_KEY_INVALID'
  | 'ERR_CA_CSR_TOO_LARGE'
  | 'ERR_CA_CSR_INVALID'
  | 'ERR_CA_CSR_SIGNATURE'
  | 'ERR_CA_CSR_KEY_TYPE'
  | 'ERR_CA_CSR_EXTRA_SAN'
  | 'ERR_CA_CSR_SPIFFE_ID_MISMATCH'
  | 'ERR_CA_CSR_CA_REQUESTED'
  | 'ERR_CA_SPIFFE_ID_INVALID'
  | 'ERR_CA_TTL_INVALID'
  | 'ERR_CA_EXPIRED'
  | 'ERR_CA_KEY_FILE'
  | 'ERR_CA_KEY_DECRYPT'
  | 'ERR_CA_NOT_INITIALIZED'
  | 'ERR_CA_ALREADY_INITIALIZED'
  | 'ERR_CA_SELF_CHECK'
  | 'ERR_CA_IMPORT_INVALID'
  | 'ERR_CA_ROTATION'
  | 'ERR_CA_CERT_NOT_FOUND'
  | 'ERR_CA_REVOKE_REASON'
  | 'ERR_DEVICE_PLATFORM'
  | 'ERR_DEVICE_NOT_FOUND'
  | 'ERR_DEVICE_TOKEN_INVALID'
  | 'ERR_DEVICE_AUTHORIZATION'
  | 'ERR_DEVICE_REPORT_INVALID'
  | 'ERR_DEVICE_REPORT_REPLAYED'
  | 'ERR_DEVICE_REVOKED'
  | 'ERR_DEVICE_PROVIDER_SIGNATURE'
  | 'ERR_DEVICE_ENROLL_FAILED'
  | 'ERR_DEVICE_NOT_ENROLLED'
  | 'ERR_DEVICE_UNAVAILABLE'
  | 'ERR_DEVICE_SERIAL_IN_USE';

export class VigilError extends Error {
  readonly code: VigilErrorCode;
  /** HTTP status the error maps to when it reaches a client. */
  readonly status: number;
  /** Text that may be shown to an untrusted client. */
  readonly publicMessage: string;

  constructor(
    code: VigilErrorCode,
    message: string,
    options: { status?: number; publicMessage?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VigilError';
    this.code = code;
    this.status = options.status ?? 500;
    this.publicMessage = options.publicMessage ?? 'internal error';
  }
}

export function isVigilError(value: unknown, code?: VigilErrorCode): value is VigilError {
  return value instanceof VigilError && (code === undefined || value.code === code);
}

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readOrCreateSecretFile } from '../internal/secrets.ts';

/**
 * The admin API token: the configured secret file, else one generated on first start
 * under the data dir (0600) so that a fresh server is never open.
 */
export function resolveAdminToken(
  configured: string | undefined,
  dataDir: string,
): { token: string; path: string } {
  if (configured !== undefined) return { token: configured, path: '(admin.token_file)' };
  const path = join(dataDir, 'admin.token');
  return { token: readOrCreateSecretFile(path, () => `vat_${randomBytes(32).toString('base64url')}`), path };
}

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSecretFile } from '../internal/secrets.ts';

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
  const existing = readSecretFile(path);
  if ('value' in existing) return { token: existing.value, path };
  if (existing.problem === 'too-open') {
    throw new Error(`${path} is readable by group or others; run chmod 600 ${path}`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = `vat_${randomBytes(32).toString('base64url')}`;
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'w' });
  return { token, path };
}

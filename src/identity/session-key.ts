import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { VigilError } from '../errors.ts';
import { readOrCreateSecretFile } from '../internal/secrets.ts';

/**
 * The 32-byte key sealing session cookies: the configured secret (base64url), else one
 * generated under the data dir (0600) on first start, so that sessions survive a
 * restart and replicas sharing a data dir or secret file share it.
 */
export function resolveSessionKey(
  configured: string | undefined,
  dataDir: string,
): { key: Buffer; path: string } {
  if (configured !== undefined)
    return { key: decode(configured, '(session.secret_file)'), path: '(session.secret_file)' };
  const path = join(dataDir, 'session.key');
  let text: string;
  try {
    text = readOrCreateSecretFile(path, () => randomBytes(32).toString('base64url'));
  } catch (error) {
    throw new VigilError('ERR_SESSION_KEY', (error as Error).message, { cause: error });
  }
  return { key: decode(text, path), path };
}

function decode(text: string, where: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64url');
  if (key.length !== 32 || !/^[A-Za-z0-9_-]+={0,2}$/.test(text.trim())) {
    throw new VigilError(
      'ERR_SESSION_KEY',
      `${where}: the session key must be 32 random bytes in base64url (e.g. openssl rand -base64 32 | tr '+/' '-_')`,
    );
  }
  return key;
}

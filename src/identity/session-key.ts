import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VigilError } from '../errors.ts';
import { readSecretFile } from '../internal/secrets.ts';

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
  const existing = readSecretFile(path);
  if ('value' in existing) return { key: decode(existing.value, path), path };
  if (existing.problem === 'too-open') {
    throw new VigilError('ERR_SESSION_KEY', `${path} is readable by group or others; run chmod 600 ${path}`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // wx: two replicas starting at once on one data dir must not overwrite each other's key.
  try {
    writeFileSync(path, `${key.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const raced = readSecretFile(path);
    if ('value' in raced) return { key: decode(raced.value, path), path };
    throw new VigilError('ERR_SESSION_KEY', `${path} cannot be read`);
  }
  return { key, path };
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

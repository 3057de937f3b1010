import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { VigilError } from '../../errors.ts';
import { readSecretFile } from '../../internal/secrets.ts';

/** Environment variable that may hold the CA key instead of a file. */
export const CA_KEY_ENV = 'VIGIL_CA_KEY';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const SEALED_PREFIX = 'v1';

/**
 * The AES-256-GCM key that seals CA private keys at rest. Held only in memory; the
 * bytes are never exposed to callers so that no code path can log them.
 */
export class CaSealingKey {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /** 32 bytes as base64 or base64url (the key file format). */
  static fromText(text: string, where: string): CaSealingKey {
    const trimmed = text.trim();
    const key = /^[A-Za-z0-9+/_-]+=*$/.test(trimmed) ? Buffer.from(trimmed, 'base64') : Buffer.alloc(0);
    if (key.length !== KEY_BYTES) {
      throw new VigilError(
        'ERR_CA_KEY_FILE',
        `${where} must hold 32 bytes as base64url (e.g. from \`vigil ca init\`)`,
      );
    }
    return new CaSealingKey(key);
  }

  static generate(): CaSealingKey {
    return new CaSealingKey(randomBytes(KEY_BYTES));
  }

  /** base64url text of the key, for writing a new key file. */
  toText(): string {
    return this.#key.toString('base64url');
  }

  /**
   * Seals `plain` bound to `context` (the authority id), so that a sealed key moved to
   * another row does not open.
   */
  seal(plain: Uint8Array, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return [
      SEALED_PREFIX,
      iv.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
      body.toString('base64url'),
    ].join('.');
  }

  open(sealed: string, context: string): Uint8Array {
    const [prefix, iv, tag, body, extra] = sealed.split('.');
    const failed = (cause?: unknown) =>
      new VigilError(
        'ERR_CA_KEY_DECRYPT',
        `cannot decrypt the private key of CA ${context}: wrong CA key (--key-file / ${CA_KEY_ENV}) or corrupted data`,
        { cause },
      );
    if (prefix !== SEALED_PREFIX || !iv || !tag || !body || extra !== undefined) throw failed();
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]);
    } catch (error) {
      throw failed(error);
    }
  }
}

/**
 * Reads the CA sealing key from `keyFile` (which only its owner may read) or, without
 * a file, from `VIGIL_CA_KEY`.
 */
export function loadCaSealingKey(
  keyFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): CaSealingKey {
  if (keyFile === undefined) {
    const fromEnv = env[CA_KEY_ENV];
    if (fromEnv === undefined || fromEnv.trim() === '') {
      throw new VigilError('ERR_CA_KEY_FILE', `no CA key: pass --key-file PATH or set ${CA_KEY_ENV}`);
    }
    return CaSealingKey.fromText(fromEnv, CA_KEY_ENV);
  }
  const read = readSecretFile(keyFile);
  if ('problem' in read) {
    const why =
      read.problem === 'too-open'
        ? `is readable by group or others (mode ${(read.mode ?? 0).toString(8).padStart(4, '0')}); run chmod 600 ${keyFile}`
        : read.problem === 'missing'
          ? 'does not exist'
          : read.problem === 'empty'
            ? 'is empty'
            : 'is not a regular file';
    throw new VigilError('ERR_CA_KEY_FILE', `CA key file ${keyFile} ${why}`);
  }
  return CaSealingKey.fromText(read.value, `CA key file ${keyFile}`);
}

/** Writes a new random CA key to `path` with mode 0600; refuses to overwrite a file. */
export function createCaKeyFile(path: string): CaSealingKey {
  const key = CaSealingKey.generate();
  try {
    writeFileSync(path, `${key.toText()}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    throw new VigilError(
      'ERR_CA_KEY_FILE',
      `cannot create CA key file ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return key;
}

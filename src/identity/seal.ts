import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';
/** Opened values kept so that the same cookie is not decrypted on every request. */
const OPENED_CACHE_LIMIT = 10_000;
/** Only short values (cookies) are cached; refresh tokens and the like are opened each time. */
const OPENED_CACHE_MAX_LENGTH = 1024;

/**
 * Authenticated encryption (AES-256-GCM, node:crypto) of small values: session cookies,
 * login state, refresh tokens at rest. Each purpose gets its own key derived with HKDF
 * from the session key, so a value sealed for one purpose never opens as another.
 * Synchronous on purpose: opening a cookie is on the proxy's hot path.
 */
export class Sealer {
  readonly #key: KeyObject;
  readonly #aad: Buffer;
  // Keyed by the whole sealed string, which only this key could have produced; holds
  // only values that authenticated, so a forged cookie is never a cache hit.
  readonly #opened = new Map<string, string>();

  constructor(masterKey: Uint8Array, purpose: string) {
    if (masterKey.byteLength !== 32) throw new TypeError('session key must be 32 bytes');
    this.#key = createSecretKey(
      Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), `vigil ${purpose}`, 32)),
    );
    this.#aad = Buffer.from(purpose);
  }

  seal(plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(this.#aad);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
  }

  /** The plaintext, or undefined for anything forged, altered, truncated or foreign. */
  open(sealed: string, maxLength = 8192): string | undefined {
    if (sealed.length > maxLength || !sealed.startsWith(`${VERSION}.`)) return undefined;
    const cached = this.#opened.get(sealed);
    if (cached !== undefined) return cached;
    const raw = Buffer.from(sealed.slice(VERSION.length + 1), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(this.#aad);
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      const plaintext = Buffer.concat([
        decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
      if (sealed.length <= OPENED_CACHE_MAX_LENGTH) {
        if (this.#opened.size >= OPENED_CACHE_LIMIT) this.#opened.clear();
        this.#opened.set(sealed, plaintext);
      }
      return plaintext;
    } catch {
      return undefined;
    }
  }
}

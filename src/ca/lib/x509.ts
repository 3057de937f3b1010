// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { createHash, randomBytes, type webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// One WebCrypto for every @peculiar/x509 call in the process: Node's own.
x509.cryptoProvider.set(globalThis.crypto);

export type { webcrypto };
export { x509 };
export type Key = webcrypto.CryptoKey;
export type KeyPair = webcrypto.CryptoKeyPair;
export const subtle = globalThis.crypto.subtle;

/** Key algorithms a CA key may use: ECDSA P-256 by default, Ed25519 where clients support it. */
export type CaKeyAlgorithm = 'ecdsa-p256' | 'ed25519';
export const CA_KEY_ALGORITHMS: readonly CaKeyAlgorithm[] = ['ecdsa-p256', 'ed25519'];

export function keyGenParams(algorithm: CaKeyAlgorithm): webcrypto.EcKeyGenParams | webcrypto.Algorithm {
  return algorithm === 'ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
}

/** The signature algorithm a key of `key`'s type signs with. */
export function signingAlgorithmOf(key: Key): webcrypto.Algorithm | webcrypto.EcdsaParams {
  const algorithm = key.algorithm as webcrypto.EcKeyAlgorithm;
  if (algorithm.name === 'Ed25519') return { name: 'Ed25519' };
  if (algorithm.name === 'ECDSA') {
    return { name: 'ECDSA', hash: algorithm.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' };
  }
  if (algorithm.name === 'RSASSA-PKCS1-v1_5')
    return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as webcrypto.Algorithm;
  throw new TypeError(`unsupported CA key algorithm ${algorithm.name}`);
}

/** Import parameters for a PKCS#8 key whose certificate names `publicKey`'s algorithm. */
export function importParamsOf(
  publicKey: x509.PublicKey,
): webcrypto.Algorithm | webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  const algorithm = publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (algorithm.name === 'ECDSA') return { name: 'ECDSA', namedCurve: algorithm.namedCurve };
  if (algorithm.name === 'Ed25519') return { name: 'Ed25519' };
  if (algorithm.name === 'RSASSA-PKCS1-v1_5') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new TypeError(`unsupported key algorithm ${algorithm.name}`);
}

/** Short name of a certificate key's algorithm for status output. */
export function algorithmName(publicKey: x509.PublicKey): string {
  const algorithm = publicKey.algorithm as webcrypto.EcKeyAlgorithm & { modulusLength?: number };
  if (algorithm.name === 'ECDSA') return `ecdsa-${algorithm.namedCurve.toLowerCase().replace('-', '')}`;
  if (algorithm.name === 'Ed25519') return 'ed25519';
  if (algorithm.name.startsWith('RSA')) return `rsa-${algorithm.modulusLength ?? 0}`;
  return algorithm.name.toLowerCase();
}

/**
 * A random positive 128-bit serial (RFC 5280 allows up to 20 octets). The top bit is
 * cleared so the DER INTEGER stays positive, and a first octet below 0x10 is drawn again
 * so the hex form never starts with 0 and every tool prints the same string.
 */
export function randomSerial(): string {
  for (;;) {
    const bytes = randomFromPool(16);
    bytes[0] = (bytes[0] ?? 0) & 0x7f;
    if ((bytes[0] ?? 0) >= 0x10) return bytes.toString('hex');
  }
}

// One call into the CSPRNG per 256 serials: per-call randomBytes costs more than the
// rest of serial handling when issuing in bulk.
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolOffset = 0;

function randomFromPool(size: number): Buffer {
  if (poolOffset + size > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolOffset = 0;
  }
  const slice = Buffer.from(pool.subarray(poolOffset, poolOffset + size));
  // Zero what was handed out, so that no copy of a serial's randomness lingers in the pool.
  pool.fill(0, poolOffset, poolOffset + size);
  poolOffset += size;
  return slice;
}

/** Serials compare as lowercase hex without separators or leading zeros (Node prints uppercase). */
export function normalizeSerial(serial: string): string {
  return serial
    .replace(/:/g, '')
    .toLowerCase()
    .replace(/^0+(?=.)/, '');
}

export const SERIAL_PATTERN = /^[0-9a-f]{1,40}$/;

/** SHA-256 of a certificate's DER, lowercase hex. */
export function fingerprintOf(cert: x509.X509Certificate): string {
  return createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex');
}

/** Splits a PEM text into its certificates, in file order. */
export function parseCertificates(pem: string): x509.X509Certificate[] {
  return x509.PemConverter.decode(pem).map((der) => new x509.X509Certificate(der));
}

/**
 * PEM armor (RFC 7468: base64 in 64-column lines between BEGIN/END lines) around DER,
 * with a final newline. Text encoding only; leaves are armored on every issuance, and
 * this is a fraction of what the generic converter costs.
 */
export function pemOf(der: Uint8Array | ArrayBuffer, label: string): string {
  const base64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines: string[] = [];
  for (let offset = 0; offset < base64.length; offset += 64) lines.push(base64.slice(offset, offset + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

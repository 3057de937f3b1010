import { createPrivateKey, type KeyObject, type webcrypto } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
import { VigilError } from '../errors.ts';
import { readSecretFile } from '../internal/secrets.ts';
import { canonicalJson } from './canonical.ts';

/** A checkpoint key: a WebCrypto key (e.g. from `jose.generateKeyPair('ES256')`) or a node:crypto KeyObject. */
export type AuditKey = webcrypto.CryptoKey | KeyObject;

/** Key that signs checkpoints; the caller owns it (config, KMS, a test key). */
export interface CheckpointSigner {
  privateKey: AuditKey;
  /** Key id written into the JWS header, so that a verifier can pick among rotated keys. */
  kid?: string;
}

export interface CheckpointClaims {
  seq: number;
  hash: string;
  created_at: number;
}

const TYPE = 'vigil-audit-checkpoint+jws';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Signs `(seq, hash, created_at)` as a compact ES256 JWS over canonical JSON. */
export async function signCheckpoint(signer: CheckpointSigner, claims: CheckpointClaims): Promise<string> {
  return new CompactSign(encoder.encode(canonicalJson(claims)))
    .setProtectedHeader({ alg: 'ES256', typ: TYPE, ...(signer.kid ? { kid: signer.kid } : {}) })
    .sign(signer.privateKey);
}

/**
 * Checks a stored checkpoint: the signature verifies with `publicKey` (ES256 only) and
 * the signed claims equal the row's columns. Returns what is wrong, or undefined.
 */
export async function checkCheckpoint(
  jws: string,
  publicKey: AuditKey,
  row: CheckpointClaims,
): Promise<string | undefined> {
  let payload: Uint8Array;
  try {
    const verified = await compactVerify(jws, publicKey, { algorithms: ['ES256'] });
    if (verified.protectedHeader.typ !== TYPE) return 'signature has the wrong type';
    payload = verified.payload;
  } catch {
    return 'signature does not verify with the public key';
  }
  let claims: unknown;
  try {
    claims = JSON.parse(decoder.decode(payload));
  } catch {
    return 'signed payload is not JSON';
  }
  const signed = claims as Partial<CheckpointClaims>;
  if (signed.seq !== row.seq || signed.hash !== row.hash || signed.created_at !== row.created_at) {
    return 'signed payload does not match the checkpoint row';
  }
  return undefined;
}

/**
 * Reads the checkpoint signing key from a PEM file (PKCS#8 or SEC1) that only its owner
 * may read, e.g. for `audit.signing_key_file` in the server config. The key must be EC
 * P-256 (ES256). Errors name the file, never the key.
 */
export function checkpointSignerFromFile(
  path: string,
  kid?: string,
): CheckpointSigner & { privateKey: KeyObject } {
  const read = readSecretFile(path);
  if ('problem' in read) {
    const why =
      read.problem === 'too-open'
        ? `readable by others (mode ${read.mode?.toString(8)}); chmod 600 it`
        : read.problem === 'missing'
          ? 'not found'
          : read.problem === 'empty'
            ? 'empty'
            : 'not a regular file';
    throw new VigilError('ERR_AUDIT_KEY_INVALID', `audit signing key ${path}: ${why}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(read.value);
  } catch (error) {
    throw new VigilError('ERR_AUDIT_KEY_INVALID', `audit signing key ${path}: not a PEM private key`, {
      cause: error,
    });
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new VigilError('ERR_AUDIT_KEY_INVALID', `audit signing key ${path}: must be EC P-256 (ES256)`);
  }
  return kid === undefined ? { privateKey } : { privateKey, kid };
}

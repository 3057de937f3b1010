import type { KeyObject, webcrypto } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
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

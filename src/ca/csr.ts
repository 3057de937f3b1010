import { VigilError, type VigilErrorCode } from '../errors.ts';
import type { webcrypto } from './lib/x509.ts';
import { x509 } from './lib/x509.ts';

/** CSRs above this size are refused before any parsing: real ones are under 2 KiB. */
export const MAX_CSR_BYTES = 16 * 1024;

/** Which leaf keys the CA signs. RSA is off by default and never below 2048 bits. */
export interface CsrPolicy {
  allowRsa: boolean;
}

export const DEFAULT_CSR_POLICY: Readonly<CsrPolicy> = Object.freeze({ allowRsa: false });

const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;
const ALLOWED_CURVES = new Set(['P-256', 'P-384']);

const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

/** A CSR that passed every check that does not depend on who it is for. */
export interface CheckedCsr {
  publicKey: x509.PublicKey;
  /** ecdsa-p256, ecdsa-p384, ed25519, rsa-N */
  keyType: string;
  /** URI SANs the CSR asked for (at most one, by then). */
  uris: string[];
}

function refused(code: VigilErrorCode, message: string, status = 400): VigilError {
  return new VigilError(code, `CSR refused: ${message}`, {
    status,
    publicMessage: `CSR refused: ${message}`,
  });
}

/**
 * Parses a PKCS#10 CSR (PEM or DER) and checks what holds for every credential kind:
 * size, structure, key type and size, self-signature, no CA request, no SAN other than
 * one URI. The URI itself is checked by the signing function of the kind.
 */
export async function checkCsr(
  input: string | Uint8Array,
  policy: CsrPolicy = DEFAULT_CSR_POLICY,
): Promise<CheckedCsr> {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > MAX_CSR_BYTES) {
    throw refused('ERR_CA_CSR_TOO_LARGE', `larger than ${MAX_CSR_BYTES} bytes`, 413);
  }
  let csr: x509.Pkcs10CertificateRequest;
  let extensions: x509.Extension[];
  try {
    csr = new x509.Pkcs10CertificateRequest(typeof input === 'string' ? input : Uint8Array.from(input));
    extensions = csr.extensions;
  } catch (error) {
    throw new VigilError('ERR_CA_CSR_INVALID', 'CSR refused: not a PKCS#10 certificate request', {
      status: 400,
      publicMessage: 'CSR refused: not a PKCS#10 certificate request',
      cause: error,
    });
  }

  const keyType = checkKeyType(csr.publicKey, policy);

  let signatureValid: boolean;
  try {
    signatureValid = await csr.verify();
  } catch (error) {
    throw new VigilError('ERR_CA_CSR_SIGNATURE', 'CSR refused: signature cannot be verified', {
      status: 400,
      publicMessage: 'CSR refused: signature cannot be verified',
      cause: error,
    });
  }
  if (!signatureValid) throw refused('ERR_CA_CSR_SIGNATURE', 'signature does not match its public key');

  const uris: string[] = [];
  for (const extension of extensions) {
    if (extension.type === OID_BASIC_CONSTRAINTS) {
      if (extension instanceof x509.BasicConstraintsExtension ? extension.ca : true) {
        throw refused('ERR_CA_CSR_CA_REQUESTED', 'requests a CA certificate (basicConstraints CA:TRUE)');
      }
    } else if (extension.type === OID_KEY_USAGE) {
      const signsCertificates = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
      if (
        extension instanceof x509.KeyUsagesExtension ? (extension.usages & signsCertificates) !== 0 : true
      ) {
        throw refused('ERR_CA_CSR_CA_REQUESTED', 'requests keyCertSign or cRLSign key usage');
      }
    } else if (extension.type === OID_SAN) {
      uris.push(...sanUris(extension));
    }
  }
  if (uris.length > 1) throw refused('ERR_CA_CSR_EXTRA_SAN', 'more than one URI subject alternative name');
  return { publicKey: csr.publicKey, keyType, uris };
}

function checkKeyType(publicKey: x509.PublicKey, policy: CsrPolicy): string {
  const algorithm = publicKey.algorithm as webcrypto.Algorithm & {
    namedCurve?: string;
    modulusLength?: number;
  };
  if (
    algorithm.name === 'ECDSA' &&
    algorithm.namedCurve !== undefined &&
    ALLOWED_CURVES.has(algorithm.namedCurve)
  ) {
    return `ecdsa-${algorithm.namedCurve.toLowerCase().replace('-', '')}`;
  }
  if (algorithm.name === 'Ed25519') return 'ed25519';
  if (algorithm.name === 'RSASSA-PKCS1-v1_5' || algorithm.name === 'RSA-PSS') {
    const bits = algorithm.modulusLength ?? 0;
    if (policy.allowRsa && bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS) return `rsa-${bits}`;
    const why = policy.allowRsa
      ? `RSA keys must be ${MIN_RSA_BITS}-${MAX_RSA_BITS} bits`
      : 'RSA keys are not enabled';
    throw refused('ERR_CA_CSR_KEY_TYPE', `key type rsa-${bits} not allowed (${why})`);
  }
  const shown = algorithm.namedCurve ? `${algorithm.name} ${algorithm.namedCurve}` : algorithm.name;
  throw refused('ERR_CA_CSR_KEY_TYPE', `key type ${shown} not allowed (P-256, P-384, Ed25519)`);
}

/** URI names of a SAN extension; any other name type is refused. */
function sanUris(extension: x509.Extension): string[] {
  let names: readonly x509.GeneralName[];
  try {
    const san =
      extension instanceof x509.SubjectAlternativeNameExtension
        ? extension
        : new x509.SubjectAlternativeNameExtension(extension.rawData);
    names = san.names.items;
  } catch (error) {
    // otherName, X.400 and EDI names do not parse here; none of them belongs in an SVID.
    throw new VigilError('ERR_CA_CSR_EXTRA_SAN', 'CSR refused: unsupported subject alternative name type', {
      status: 400,
      publicMessage: 'CSR refused: unsupported subject alternative name type',
      cause: error,
    });
  }
  const uris: string[] = [];
  for (const name of names) {
    if (name.type !== 'url')
      throw refused('ERR_CA_CSR_EXTRA_SAN', `subject alternative name of type ${name.type} not allowed`);
    uris.push(name.value);
  }
  return uris;
}

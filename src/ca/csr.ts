import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';

/** A public key as node:crypto takes it without making a KeyObject first. */
type KeyInput = { key: Buffer; format: 'der'; type: 'spki' };

import { CertificationRequest } from '@peculiar/asn1-csr';
import { ECParameters } from '@peculiar/asn1-ecc';
import { AsnConvert, AsnParser } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';
import { VigilError, type VigilErrorCode } from '../errors.ts';

/** CSRs above this size are refused before any parsing: real ones are under 2 KiB. */
export const MAX_CSR_BYTES = 16 * 1024;

/** Which leaf keys the CA signs. RSA is off by default and never below 2048 bits. */
export interface CsrPolicy {
  allowRsa: boolean;
}

export const DEFAULT_CSR_POLICY: Readonly<CsrPolicy> = Object.freeze({ allowRsa: false });

const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;

const OID = {
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
} as const;

/** CSR signature algorithms and the digest node:crypto verifies them with (null: the key decides). */
const SIGNATURE_DIGESTS: Readonly<Record<string, string | null>> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

/** A CSR that passed every check that does not depend on who it is for. */
export interface CheckedCsr {
  /** The requested key, exactly as the CSR carries it; it goes into the certificate as is. */
  subjectPublicKeyInfo: asn1X509.SubjectPublicKeyInfo;
  /** Its DER encoding. */
  subjectPublicKeyInfoDer: ArrayBuffer;
  /** ecdsa-p256, ecdsa-p384, ed25519, rsa-N */
  keyType: string;
  /** URI SANs the CSR asked for (at most one, by then). */
  uris: string[];
}

function refused(code: VigilErrorCode, message: string, status = 400, cause?: unknown): VigilError {
  return new VigilError(code, `CSR refused: ${message}`, {
    status,
    publicMessage: `CSR refused: ${message}`,
    cause,
  });
}

const malformed = (cause?: unknown) =>
  refused('ERR_CA_CSR_INVALID', 'not a PKCS#10 certificate request', 400, cause);

const PEM =
  /^-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (?:NEW )?CERTIFICATE REQUEST-----\s*$/;

/** PEM armor to DER bytes (RFC 7468 text, not ASN.1); DER passes through. */
function derOf(input: string | Uint8Array): Uint8Array {
  if (typeof input !== 'string') return input;
  const match = PEM.exec(input.trim());
  if (!match?.[1]) throw malformed();
  return Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
}

/**
 * Parses a PKCS#10 CSR (PEM or DER) and checks what holds for every credential kind:
 * size, structure, key type and size, self-signature, no CA request, no SAN other than
 * one URI. The URI itself is checked by the signing function of the kind.
 *
 * Parsing uses @peculiar's ASN.1 schema classes; keys and signatures go to node:crypto
 * (OpenSSL), which also rejects points that are not on their curve.
 */
export function checkCsr(input: string | Uint8Array, policy: CsrPolicy = DEFAULT_CSR_POLICY): CheckedCsr {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > MAX_CSR_BYTES) throw refused('ERR_CA_CSR_TOO_LARGE', `larger than ${MAX_CSR_BYTES} bytes`, 413);
  let request: CertificationRequest;
  let spkiRaw: Uint8Array;
  try {
    const der = derOf(input);
    const parsed = asn1js.fromBER(new Uint8Array(der).buffer);
    if (parsed.offset === -1 || parsed.result.error) throw new Error(parsed.result.error || 'not BER');
    if (parsed.offset !== der.byteLength) throw new Error('bytes after the request');
    request = AsnParser.fromASN(parsed.result, CertificationRequest);
    // The key's bytes as the request carries them, from the same tree (info is the first
    // element of the request, the key the third of info; the typed parse checked the shape).
    const info = (parsed.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
    spkiRaw = (info.valueBlock.value[2] as asn1js.Sequence).valueBeforeDecodeView;
  } catch (error) {
    if (error instanceof VigilError) throw error;
    throw malformed(error);
  }
  const info = request.certificationRequestInfo;
  if (!info?.subjectPKInfo || !request.certificationRequestInfoRaw) throw malformed();

  const { key, keyType, der } = publicKeyOf(info.subjectPKInfo, spkiRaw, policy);

  const digest = SIGNATURE_DIGESTS[request.signatureAlgorithm.algorithm];
  if (digest === undefined) throw refused('ERR_CA_CSR_SIGNATURE', 'unsupported signature algorithm');
  let valid: boolean;
  try {
    valid = verify(
      digest,
      new Uint8Array(request.certificationRequestInfoRaw),
      { ...key, dsaEncoding: 'der' },
      new Uint8Array(request.signature),
    );
  } catch (error) {
    // OpenSSL parses the key here: a point off its curve fails now.
    throw refused('ERR_CA_CSR_SIGNATURE', 'public key or signature does not parse', 400, error);
  }
  if (!valid) throw refused('ERR_CA_CSR_SIGNATURE', 'signature does not match its public key');

  const uris: string[] = [];
  for (const extension of requestedExtensions(info.attributes ?? [])) {
    const value = extension.extnValue.buffer;
    if (extension.extnID === OID.basicConstraints) {
      if (parseExtension(value, asn1X509.BasicConstraints).cA) {
        throw refused('ERR_CA_CSR_CA_REQUESTED', 'requests a CA certificate (basicConstraints CA:TRUE)');
      }
    } else if (extension.extnID === OID.keyUsage) {
      const flags = parseExtension(value, asn1X509.KeyUsage).toNumber();
      if ((flags & (asn1X509.KeyUsageFlags.keyCertSign | asn1X509.KeyUsageFlags.cRLSign)) !== 0) {
        throw refused('ERR_CA_CSR_CA_REQUESTED', 'requests keyCertSign or cRLSign key usage');
      }
    } else if (extension.extnID === OID.subjectAltName) {
      for (const name of parseExtension(value, asn1X509.SubjectAlternativeName)) {
        if (name.uniformResourceIdentifier === undefined) {
          const type = Object.keys(name).find(
            (field) => (name as unknown as Record<string, unknown>)[field] !== undefined,
          );
          throw refused(
            'ERR_CA_CSR_EXTRA_SAN',
            `subject alternative name of type ${type ?? 'unknown'} not allowed`,
          );
        }
        uris.push(name.uniformResourceIdentifier);
      }
    }
    // Other requested extensions are ignored: the CA never copies an extension from a CSR.
  }
  if (uris.length > 1) throw refused('ERR_CA_CSR_EXTRA_SAN', 'more than one URI subject alternative name');
  return {
    subjectPublicKeyInfo: info.subjectPKInfo,
    subjectPublicKeyInfoDer: der,
    keyType,
    uris,
  };
}

function parseExtension<T>(value: ArrayBuffer, type: new () => T): T {
  try {
    return AsnConvert.parse(value, type);
  } catch (error) {
    throw malformed(error);
  }
}

function requestedExtensions(attributes: readonly asn1X509.Attribute[]): asn1X509.Extension[] {
  const extensions: asn1X509.Extension[] = [];
  for (const attribute of attributes) {
    if (attribute.type !== OID.extensionRequest) continue;
    for (const value of attribute.values) extensions.push(...parseExtension(value, asn1X509.Extensions));
  }
  return extensions;
}

/** Key types by the SPKI's algorithm (and named curve) OIDs. */
const KEY_TYPES: Readonly<Record<string, string>> = {
  '1.2.840.10045.2.1:1.2.840.10045.3.1.7': 'ecdsa-p256',
  '1.2.840.10045.2.1:1.3.132.0.34': 'ecdsa-p384',
  '1.3.101.112:': 'ed25519',
};
const RSA_OID = '1.2.840.113549.1.1.1';

/**
 * The DER of P-256, P-384 and Ed25519 public keys is a fixed prefix and the key bits;
 * the prefixes are taken from keys OpenSSL encodes once at start.
 */
const CANONICAL_SPKI = [
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
  generateKeyPairSync('ed25519').publicKey,
].map((key) => {
  const der = key.export({ type: 'spki', format: 'der' });
  const keyBytes =
    key.asymmetricKeyType === 'ed25519' ? 32 : key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 97 : 65;
  return { prefix: der.subarray(0, der.length - keyBytes), length: der.length };
});

function isCanonicalSpki(raw: Uint8Array): boolean {
  return CANONICAL_SPKI.some(
    ({ prefix, length }) =>
      raw.length === length && Buffer.from(raw.buffer, raw.byteOffset, prefix.length).equals(prefix),
  );
}
const CURVE_BY_DER = new Map(
  ['1.2.840.10045.3.1.7', '1.3.132.0.34'].map((oid) => [
    Buffer.from(new asn1js.ObjectIdentifier({ value: oid }).toBER(false)).toString('hex'),
    oid,
  ]),
);
const CURVE_NAMES: Readonly<Record<string, string>> = {
  '1.3.132.0.35': 'secp521r1',
  '1.3.132.0.10': 'secp256k1',
};

/**
 * The CSR's key after the key-type policy, with its DER encoding for the certificate. EC and Ed25519 keys are typed by their OIDs and parsed by OpenSSL once, in
 * the signature check (which rejects points off their curve); RSA keys are parsed here
 * for their size.
 */
function publicKeyOf(
  spki: asn1X509.SubjectPublicKeyInfo,
  raw: Uint8Array,
  policy: CsrPolicy,
): { key: KeyInput; keyType: string; der: ArrayBuffer } {
  // A certificate must hold the key in DER; a CSR may carry it in BER. The common key
  // types have one DER form (OpenSSL's prefix, then the key bits): bytes in that form are
  // taken as they are, anything else is re-encoded.
  let der: ArrayBuffer;
  try {
    der = isCanonicalSpki(raw) ? new Uint8Array(raw).buffer : AsnConvert.serialize(spki);
  } catch (error) {
    throw refused('ERR_CA_CSR_KEY_TYPE', 'public key does not parse', 400, error);
  }
  const notAllowed = (shown: string, why = 'P-256, P-384, Ed25519') =>
    refused('ERR_CA_CSR_KEY_TYPE', `key type ${shown} not allowed (${why})`);
  const algorithm = spki.algorithm.algorithm;
  const parameters = spki.algorithm.parameters;
  let curve = '';
  if (algorithm === '1.2.840.10045.2.1' && parameters) {
    // The common curves by their encoded OID, without a parse; others are parsed to be named.
    curve = CURVE_BY_DER.get(Buffer.from(parameters).toString('hex')) ?? '';
    if (curve === '') {
      try {
        curve = AsnConvert.parse(parameters, ECParameters).namedCurve ?? '';
      } catch (error) {
        throw refused('ERR_CA_CSR_KEY_TYPE', 'public key does not parse', 400, error);
      }
    }
  }
  const keyType = KEY_TYPES[`${algorithm}:${curve}`];
  const input: KeyInput = { key: Buffer.from(der), format: 'der', type: 'spki' };
  if (keyType !== undefined) return { key: input, keyType, der };
  if (algorithm === RSA_OID) {
    let size: number;
    try {
      size = createPublicKey(input).asymmetricKeyDetails?.modulusLength ?? 0;
    } catch (error) {
      throw refused('ERR_CA_CSR_KEY_TYPE', 'public key does not parse', 400, error);
    }
    if (policy.allowRsa && size >= MIN_RSA_BITS && size <= MAX_RSA_BITS)
      return { key: input, keyType: `rsa-${size}`, der };
    throw notAllowed(
      `rsa-${size}`,
      policy.allowRsa ? `RSA keys must be ${MIN_RSA_BITS}-${MAX_RSA_BITS} bits` : 'RSA keys are not enabled',
    );
  }
  if (curve !== '') throw notAllowed(`ecdsa ${CURVE_NAMES[curve] ?? curve}`);
  throw notAllowed(algorithm);
}

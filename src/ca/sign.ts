import { createHash, type KeyObject, sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';
import { VigilError } from '../errors.ts';
import type { Clock } from '../internal/clock.ts';
import { type CheckedCsr, type CsrPolicy, checkCsr, DEFAULT_CSR_POLICY } from './csr.ts';
import { pemOf, randomSerial, type x509 } from './lib/x509.ts';
import { checkWorkloadSpiffeId, deviceSpiffeId } from './spiffe.ts';

/** notBefore is set this far in the past so that a peer whose clock lags still accepts the cert. */
export const BACKDATE_MS = 10_000;
export const DEFAULT_DEVICE_TTL_MS = 24 * 3_600_000;
export const DEFAULT_WORKLOAD_TTL_MS = 3_600_000;
/** Longest leaf lifetime a caller may ask for; short-lived credentials are the point. */
export const MAX_LEAF_TTL_MS = 30 * 24 * 3_600_000;

/** The intermediate that signs leaves, with what the signing functions need around it. */
export interface LeafSigner {
  /** ca_authorities.id of the intermediate. */
  id: string;
  cert: x509.X509Certificate;
  /** The intermediate's private key as node:crypto holds it (signing is synchronous there). */
  key: KeyObject;
  trustDomain: string;
  clock: Clock;
  csrPolicy?: CsrPolicy;
}

export interface DeviceCertificateParams {
  /** PKCS#10 CSR, PEM or DER, from the device. */
  csr: string | Uint8Array;
  /** Enrolled device id the caller has authorized; becomes `spiffe://<td>/device/<id>`. */
  deviceId: string;
  /** Defaults to 24 h; capped at the intermediate's remaining lifetime. */
  ttlMs?: number;
}

export interface WorkloadCertificateParams {
  csr: string | Uint8Array;
  /** The one SPIFFE ID the caller authorized for this workload. */
  spiffeId: string;
  /** Defaults to 1 h; capped at the intermediate's remaining lifetime. */
  ttlMs?: number;
}

export type LeafKind = 'device' | 'workload';

export interface SignedLeaf {
  kind: LeafKind;
  /** Device id, or the workload's SPIFFE ID path. */
  subject: string;
  spiffeId: string;
  serial: string;
  /** The leaf in DER. */
  der: Uint8Array;
  /** The leaf in PEM. */
  pem: string;
  notBefore: Date;
  notAfter: Date;
  /** Half-life: when the holder should ask for a new certificate. */
  renewAfter: Date;
  keyType: string;
}

/** Signs an X.509 device certificate: clientAuth only, exactly one URI SAN, its device's SPIFFE ID. */
export function signDeviceCertificate(signer: LeafSigner, params: DeviceCertificateParams): SignedLeaf {
  const spiffeId = deviceSpiffeId(signer.trustDomain, params.deviceId);
  const csr = checkCsr(params.csr, signer.csrPolicy ?? DEFAULT_CSR_POLICY);
  checkRequestedUri(csr, spiffeId);
  return signLeaf(signer, csr, {
    kind: 'device',
    subject: params.deviceId,
    spiffeId,
    ttlMs: params.ttlMs ?? DEFAULT_DEVICE_TTL_MS,
    subjectCommonName: params.deviceId,
  });
}

/** Signs an X.509-SVID for a workload: serverAuth + clientAuth, exactly the authorized SPIFFE ID. */
export function signWorkloadCertificate(signer: LeafSigner, params: WorkloadCertificateParams): SignedLeaf {
  const parsed = checkWorkloadSpiffeId(signer.trustDomain, params.spiffeId);
  const csr = checkCsr(params.csr, signer.csrPolicy ?? DEFAULT_CSR_POLICY);
  checkRequestedUri(csr, params.spiffeId);
  return signLeaf(signer, csr, {
    kind: 'workload',
    subject: parsed.path,
    spiffeId: params.spiffeId,
    ttlMs: params.ttlMs ?? DEFAULT_WORKLOAD_TTL_MS,
  });
}

/** A CSR may leave the SAN out (the CA adds it) or ask for exactly the authorized ID. */
function checkRequestedUri(csr: CheckedCsr, spiffeId: string): void {
  const requested = csr.uris[0];
  if (requested !== undefined && requested !== spiffeId) {
    throw new VigilError(
      'ERR_CA_CSR_SPIFFE_ID_MISMATCH',
      `CSR refused: asks for ${requested.slice(0, 200)}, authorized ${spiffeId}`,
      {
        status: 403,
        publicMessage: 'CSR refused: SPIFFE ID is not the one authorized for this credential',
      },
    );
  }
}

interface LeafTemplate {
  kind: LeafKind;
  subject: string;
  spiffeId: string;
  ttlMs: number;
  /** CN of the subject name (devices carry their id; workloads none). */
  subjectCommonName?: string;
}

/** Computes notBefore/notAfter: backdated, and never past the signer's own notAfter. */
export function leafValidity(
  signer: { cert: x509.X509Certificate; clock: Clock },
  ttlMs: number,
): { now: number; notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_LEAF_TTL_MS) {
    throw new VigilError(
      'ERR_CA_TTL_INVALID',
      `certificate TTL must be between 1 ms and ${MAX_LEAF_TTL_MS / 86_400_000} days`,
      {
        status: 400,
        publicMessage: 'invalid certificate TTL',
      },
    );
  }
  const now = signer.clock.now();
  const signerNotAfter = signer.cert.notAfter.getTime();
  if (signerNotAfter <= now) {
    throw new VigilError(
      'ERR_CA_EXPIRED',
      `intermediate CA expired at ${signer.cert.notAfter.toISOString()}; rotate it`,
      {
        status: 503,
        publicMessage: 'certificate authority unavailable',
      },
    );
  }
  // X.509 times have whole seconds; rounding here keeps renewAfter and the stored row
  // equal to what the certificate says.
  const notBefore = Math.floor((now - BACKDATE_MS) / 1000) * 1000;
  const notAfter = Math.floor(Math.min(now + ttlMs, signerNotAfter) / 1000) * 1000;
  return { now, notBefore: new Date(notBefore), notAfter: new Date(notAfter) };
}

/** Something an asn1js block can hold: one of its blocks, or DER encoded before. */
type Encodable = asn1js.AsnType | DerBlock;
interface DerBlock {
  toBER(sizeOnly?: boolean, writer?: { write(buffer: ArrayBuffer): void }): ArrayBuffer;
}

/**
 * A part already DER-encoded, stood in for an asn1js block: asn1js asks each child of a
 * constructed block to write itself, so parts that are the same for every leaf (issuer
 * name, fixed extensions) and the signed TBS itself are encoded once, not per call.
 */
function derBlock(der: ArrayBuffer): DerBlock {
  return {
    toBER(_sizeOnly?: boolean, writer?: { write(buffer: ArrayBuffer): void }): ArrayBuffer {
      if (!writer) return der;
      writer.write(der);
      return new ArrayBuffer(0);
    },
  };
}

/** A value of @peculiar's ASN.1 schema classes, encoded once. */
const encoded = (value: unknown) => derBlock(AsnConvert.serialize(value));

/** Builds an extension from a value of @peculiar's ASN.1 schema classes. */
function extension(extnID: string, critical: boolean, value: unknown): asn1X509.Extension {
  return new asn1X509.Extension({
    extnID,
    critical,
    extnValue: new OctetString(AsnConvert.serialize(value)),
  });
}

/** An OID encoded once (asn1js turns the dotted text into DER on every encoding otherwise). */
const oidBlock = (oid: string) => derBlock(new asn1js.ObjectIdentifier({ value: oid }).toBER(false));
const SAN_OID = oidBlock(asn1X509.id_ce_subjectAltName);
const SKI_OID = oidBlock(asn1X509.id_ce_subjectKeyIdentifier);
const COMMON_NAME_OID = oidBlock('2.5.4.3');

/** A non-critical extension whose value is an asn1js block (the per-leaf ones). */
function extensionBlock(extnID: DerBlock, value: asn1js.AsnType): asn1js.Sequence {
  return new asn1js.Sequence({
    value: [extnID, new asn1js.OctetString({ valueHex: value.toBER(false) })] as asn1js.AsnType[],
  });
}

/** SubjectAltName with one URI (GeneralName [6] IA5String). */
function sanValue(uri: string): asn1js.Sequence {
  return new asn1js.Sequence({
    value: [
      new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 6 }, valueHex: Buffer.from(uri, 'utf8') }),
    ],
  });
}

/** RFC 5280 Time: UTCTime through 2049, GeneralizedTime after. */
function timeBlock(date: Date): asn1js.AsnType {
  return date.getUTCFullYear() > 2049
    ? new asn1js.GeneralizedTime({ valueDate: date })
    : new asn1js.UTCTime({ valueDate: date });
}

// Parts every leaf of a kind shares, encoded once.
const VERSION_3 = derBlock(
  new asn1js.Constructed({
    idBlock: { tagClass: 3, tagNumber: 0 },
    value: [new asn1js.Integer({ value: 2 })],
  }).toBER(false),
);
const LEAF_CONSTRAINTS_BLOCK = encoded(
  extension(asn1X509.id_ce_basicConstraints, true, new asn1X509.BasicConstraints({ cA: false })),
);
const LEAF_KEY_USAGE_BLOCK = encoded(
  extension(asn1X509.id_ce_keyUsage, true, new asn1X509.KeyUsage(asn1X509.KeyUsageFlags.digitalSignature)),
);
const DEVICE_USAGES_BLOCK = encoded(
  extension(asn1X509.id_ce_extKeyUsage, false, new asn1X509.ExtendedKeyUsage([asn1X509.id_kp_clientAuth])),
);
const WORKLOAD_USAGES_BLOCK = encoded(
  extension(
    asn1X509.id_ce_extKeyUsage,
    false,
    new asn1X509.ExtendedKeyUsage([asn1X509.id_kp_serverAuth, asn1X509.id_kp_clientAuth]),
  ),
);

function rdn(type: string, value: string): asn1X509.RelativeDistinguishedName {
  return new asn1X509.RelativeDistinguishedName([
    new asn1X509.AttributeTypeAndValue({ type, value: new asn1X509.AttributeValue({ utf8String: value }) }),
  ]);
}

const ORGANIZATION = encoded(rdn('2.5.4.10', 'Vigil'));
const UNITS = {
  device: encoded(rdn('2.5.4.11', 'device')),
  workload: encoded(rdn('2.5.4.11', 'workload')),
} as const;

/** O=Vigil, OU=<kind>[, CN=<device id>]; the identity itself is the URI SAN. */
function nameBlock(kind: LeafKind, commonName: string | undefined): asn1js.Sequence {
  const rdns: Encodable[] = [ORGANIZATION, UNITS[kind]];
  if (commonName !== undefined) {
    rdns.push(
      new asn1js.Set({
        value: [
          new asn1js.Sequence({
            value: [COMMON_NAME_OID, new asn1js.Utf8String({ value: commonName })] as asn1js.AsnType[],
          }),
        ],
      }),
    );
  }
  return new asn1js.Sequence({ value: rdns as asn1js.AsnType[] });
}

/** What stays the same for every leaf an intermediate signs, computed once per signer. */
interface PreparedSigner {
  issuerBlock: DerBlock;
  algorithmBlock: DerBlock;
  digest: string | null;
  authorityKeyIdBlock: DerBlock | undefined;
}

const preparedSigners = new WeakMap<LeafSigner, PreparedSigner>();

function prepare(signer: LeafSigner): PreparedSigner {
  const cached = preparedSigners.get(signer);
  if (cached) return cached;
  const certificate = AsnConvert.parse(signer.cert.rawData, asn1X509.Certificate);
  const keyId = certificate.tbsCertificate.extensions?.find(
    (item) => item.extnID === asn1X509.id_ce_subjectKeyIdentifier,
  );
  const { algorithm, digest } = signatureAlgorithm(signer.key);
  const prepared: PreparedSigner = {
    issuerBlock: encoded(certificate.tbsCertificate.subject),
    algorithmBlock: encoded(algorithm),
    digest,
    authorityKeyIdBlock: keyId
      ? encoded(
          extension(
            asn1X509.id_ce_authorityKeyIdentifier,
            false,
            new asn1X509.AuthorityKeyIdentifier({
              keyIdentifier: AsnConvert.parse(keyId.extnValue.buffer, asn1X509.SubjectKeyIdentifier),
            }),
          ),
        )
      : undefined,
  };
  preparedSigners.set(signer, prepared);
  return prepared;
}

function signatureAlgorithm(key: KeyObject): {
  algorithm: asn1X509.AlgorithmIdentifier;
  digest: string | null;
} {
  if (key.asymmetricKeyType === 'ed25519') {
    return { algorithm: new asn1X509.AlgorithmIdentifier({ algorithm: '1.3.101.112' }), digest: null };
  }
  if (key.asymmetricKeyType === 'ec') {
    const p384 = key.asymmetricKeyDetails?.namedCurve === 'secp384r1';
    return {
      algorithm: new asn1X509.AlgorithmIdentifier({
        algorithm: p384 ? '1.2.840.10045.4.3.3' : '1.2.840.10045.4.3.2',
      }),
      digest: p384 ? 'sha384' : 'sha256',
    };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return {
      algorithm: new asn1X509.AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.11', parameters: null }),
      digest: 'sha256',
    };
  }
  throw new TypeError(`unsupported intermediate key type ${key.asymmetricKeyType}`);
}

/**
 * Assembles the TBSCertificate from @peculiar's ASN.1 classes and signs it with
 * node:crypto. The generic X509CertificateGenerator re-parses and re-encodes several
 * times per certificate; this path encodes each part once.
 */
function signLeaf(signer: LeafSigner, csr: CheckedCsr, template: LeafTemplate): SignedLeaf {
  const { now, notBefore, notAfter } = leafValidity(signer, template.ttlMs);
  const prepared = prepare(signer);
  const serial = randomSerial();
  // SKI by RFC 7093 method 1: SHA-256 of the subjectPublicKey bits, leftmost 160 bits.
  const keyId = createHash('sha256')
    .update(new Uint8Array(csr.subjectPublicKeyInfo.subjectPublicKey))
    .digest()
    .subarray(0, 20);
  // The TBS is built from asn1js blocks (the ASN.1 library under @peculiar's schema
  // classes): the per-leaf parts are small, and the schema layer's reflection cost more
  // than the encoding itself. Shared parts are the pre-encoded DER of the schema classes.
  const extensions: Encodable[] = [
    LEAF_CONSTRAINTS_BLOCK,
    LEAF_KEY_USAGE_BLOCK,
    template.kind === 'device' ? DEVICE_USAGES_BLOCK : WORKLOAD_USAGES_BLOCK,
    extensionBlock(SAN_OID, sanValue(template.spiffeId)),
    extensionBlock(SKI_OID, new asn1js.OctetString({ valueHex: keyId })),
  ];
  if (prepared.authorityKeyIdBlock) extensions.push(prepared.authorityKeyIdBlock);
  const tbsBlock = new asn1js.Sequence({
    value: [
      VERSION_3,
      new asn1js.Integer({ valueHex: Buffer.from(serial, 'hex') }),
      prepared.algorithmBlock,
      prepared.issuerBlock,
      new asn1js.Sequence({ value: [timeBlock(notBefore), timeBlock(notAfter)] }),
      nameBlock(template.kind, template.subjectCommonName),
      derBlock(csr.subjectPublicKeyInfoDer),
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 3 },
        value: [new asn1js.Sequence({ value: extensions as asn1js.AsnType[] })],
      }),
    ] as asn1js.AsnType[],
  });
  const tbs = tbsBlock.toBER(false);
  // The KeyObject itself, not an options object: ECDSA signatures are DER by default, and
  // Node checks an options object more slowly than a key.
  const signature = sign(prepared.digest, new Uint8Array(tbs), signer.key);
  const der = new Uint8Array(
    new asn1js.Sequence({
      value: [
        derBlock(tbs),
        prepared.algorithmBlock,
        new asn1js.BitString({ valueHex: signature }),
      ] as asn1js.AsnType[],
    }).toBER(false),
  );
  const renewAfter = new Date(now + Math.floor((notAfter.getTime() - now) / 2));
  return {
    kind: template.kind,
    subject: template.subject,
    spiffeId: template.spiffeId,
    serial,
    der,
    pem: pemOf(der, 'CERTIFICATE'),
    notBefore,
    notAfter,
    renewAfter,
    keyType: csr.keyType,
  };
}

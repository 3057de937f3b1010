import { VigilError } from '../errors.ts';
import type { Clock } from '../internal/clock.ts';
import { type CheckedCsr, type CsrPolicy, checkCsr, DEFAULT_CSR_POLICY } from './csr.ts';
import type { Key } from './lib/x509.ts';
import { randomSerial, signingAlgorithmOf, x509 } from './lib/x509.ts';
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
  key: Key;
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
  certificate: x509.X509Certificate;
  /** The leaf in PEM. */
  pem: string;
  notBefore: Date;
  notAfter: Date;
  /** Half-life: when the holder should ask for a new certificate. */
  renewAfter: Date;
  keyType: string;
}

/** Signs an X.509 device certificate: clientAuth only, exactly one URI SAN, its device's SPIFFE ID. */
export async function signDeviceCertificate(
  signer: LeafSigner,
  params: DeviceCertificateParams,
): Promise<SignedLeaf> {
  const spiffeId = deviceSpiffeId(signer.trustDomain, params.deviceId);
  const csr = await checkCsr(params.csr, signer.csrPolicy ?? DEFAULT_CSR_POLICY);
  checkRequestedUri(csr, spiffeId);
  return signLeaf(signer, csr, {
    kind: 'device',
    subject: params.deviceId,
    spiffeId,
    ttlMs: params.ttlMs ?? DEFAULT_DEVICE_TTL_MS,
    usages: [x509.ExtendedKeyUsage.clientAuth],
    name: [{ CN: [params.deviceId] }, { OU: ['device'] }, { O: ['Vigil'] }],
  });
}

/** Signs an X.509-SVID for a workload: serverAuth + clientAuth, exactly the authorized SPIFFE ID. */
export async function signWorkloadCertificate(
  signer: LeafSigner,
  params: WorkloadCertificateParams,
): Promise<SignedLeaf> {
  const parsed = checkWorkloadSpiffeId(signer.trustDomain, params.spiffeId);
  const csr = await checkCsr(params.csr, signer.csrPolicy ?? DEFAULT_CSR_POLICY);
  checkRequestedUri(csr, params.spiffeId);
  return signLeaf(signer, csr, {
    kind: 'workload',
    subject: parsed.path,
    spiffeId: params.spiffeId,
    ttlMs: params.ttlMs ?? DEFAULT_WORKLOAD_TTL_MS,
    usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    name: [{ OU: ['workload'] }, { O: ['Vigil'] }],
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
  usages: string[];
  name: x509.JsonName;
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

async function signLeaf(signer: LeafSigner, csr: CheckedCsr, template: LeafTemplate): Promise<SignedLeaf> {
  const { now, notBefore, notAfter } = leafValidity(signer, template.ttlMs);
  const serial = randomSerial();
  const authorityKeyId = signer.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: template.name,
    issuer: signer.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signingAlgorithmOf(signer.key),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(template.usages, false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: template.spiffeId }], false),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      ...(authorityKeyId ? [new x509.AuthorityKeyIdentifierExtension(authorityKeyId)] : []),
    ],
  });
  const renewAfter = new Date(now + Math.floor((notAfter.getTime() - now) / 2));
  return {
    kind: template.kind,
    subject: template.subject,
    spiffeId: template.spiffeId,
    serial,
    certificate,
    pem: `${certificate.toString('pem')}\n`,
    notBefore,
    notAfter,
    renewAfter,
    keyType: csr.keyType,
  };
}

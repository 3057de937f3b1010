import { type KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { VigilError } from '../../errors.ts';
import type { Clock } from '../../internal/clock.ts';
import { BACKDATE_MS, signWorkloadCertificate } from '../sign.ts';
import type { Key, KeyPair } from './x509.ts';
import { type CaKeyAlgorithm, keyGenParams, randomSerial, signingAlgorithmOf, subtle, x509 } from './x509.ts';

const CA_NAME = (role: string, id: string, trustDomain: string): x509.JsonName => [
  { CN: [`Vigil ${role} CA ${id}`] },
  { OU: [trustDomain] },
  { O: ['Vigil'] },
];

export async function generateCaKeys(algorithm: CaKeyAlgorithm): Promise<KeyPair> {
  // Extractable once, so the key can be sealed for the store; the copy the CA signs with
  // is re-imported non-extractable when loaded.
  return (await subtle.generateKey(keyGenParams(algorithm), true, ['sign', 'verify'])) as KeyPair;
}

/** A self-signed root: CA:TRUE with path length 1 (one intermediate below it). */
export async function createRootCertificate(options: {
  id: string;
  trustDomain: string;
  keys: KeyPair;
  clock: Clock;
  ttlMs: number;
}): Promise<x509.X509Certificate> {
  const now = options.clock.now();
  const name = CA_NAME('Root', options.id, options.trustDomain);
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + options.ttlMs),
    keys: options.keys,
    signingAlgorithm: signingAlgorithmOf(options.keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(options.keys.publicKey),
    ],
  });
}

/** An intermediate signed by the root: CA:TRUE with path length 0 (signs leaves only). */
export async function createIntermediateCertificate(options: {
  id: string;
  trustDomain: string;
  publicKey: Key;
  root: x509.X509Certificate;
  rootKey: Key;
  clock: Clock;
  ttlMs: number;
}): Promise<x509.X509Certificate> {
  const now = options.clock.now();
  const rootKeyId = options.root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: CA_NAME('Intermediate', options.id, options.trustDomain),
    issuer: options.root.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + options.ttlMs, options.root.notAfter.getTime())),
    publicKey: options.publicKey,
    signingKey: options.rootKey,
    signingAlgorithm: signingAlgorithmOf(options.rootKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(options.publicKey),
      ...(rootKeyId ? [new x509.AuthorityKeyIdentifierExtension(rootKeyId)] : []),
    ],
  });
}

/** True when `cert` says it may sign certificates (CA:TRUE and keyCertSign when key usage is present). */
export function isCaCertificate(cert: x509.X509Certificate): boolean {
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  return (
    constraints?.ca === true && (usage === null || (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0)
  );
}

/**
 * SPIRE's habit: before an intermediate serves, it signs a throwaway workload
 * certificate through the very path leaves take, and that certificate must verify up to
 * one of the roots with OpenSSL's own verifier (through node:crypto), the one TLS peers
 * will use. Throws ERR_CA_SELF_CHECK.
 */
export async function selfCheck(options: {
  id: string;
  intermediate: x509.X509Certificate;
  key: KeyObject;
  roots: readonly x509.X509Certificate[];
  clock: Clock;
  trustDomain: string;
}): Promise<void> {
  const fail = (why: string, cause?: unknown): never => {
    throw new VigilError(
      'ERR_CA_SELF_CHECK',
      `CA self-check failed for intermediate ${options.id}: ${why}; refusing to start`,
      { status: 503, publicMessage: 'certificate authority unavailable', cause },
    );
  };
  const now = options.clock.now();
  const { intermediate } = options;
  if (!isCaCertificate(intermediate)) fail('its certificate is not a CA certificate');
  if (intermediate.notAfter.getTime() <= now) fail(`it expired at ${intermediate.notAfter.toISOString()}`);
  if (intermediate.notBefore.getTime() > now + BACKDATE_MS) {
    fail(`it is not valid before ${intermediate.notBefore.toISOString()}`);
  }
  let probe: NodeX509Certificate;
  try {
    const probeKeys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ])) as KeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: ['vigil self-check'] }],
      keys: probeKeys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const leaf = signWorkloadCertificate(
      {
        id: options.id,
        cert: intermediate,
        key: options.key,
        trustDomain: options.trustDomain,
        clock: options.clock,
      },
      {
        csr: csr.toString('pem'),
        spiffeId: `spiffe://${options.trustDomain}/vigil/self-check`,
        ttlMs: 60_000,
      },
    );
    probe = new NodeX509Certificate(leaf.der);
  } catch (error) {
    return fail('its key cannot sign', error);
  }
  const middle = new NodeX509Certificate(new Uint8Array(intermediate.rawData));
  if (!probe.checkIssued(middle) || !probe.verify(middle.publicKey)) {
    fail('its private key does not match its certificate');
  }
  const chained = options.roots.some((root) => {
    const top = new NodeX509Certificate(new Uint8Array(root.rawData));
    return middle.checkIssued(top) && middle.verify(top.publicKey) && root.notAfter.getTime() > now && top.ca;
  });
  if (!chained) fail('its certificate does not chain to a root in the trust bundle');
}

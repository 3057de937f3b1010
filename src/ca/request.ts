import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { subtle, x509 } from './lib/x509.ts';

/**
 * A PKCS#10 request for a P-256 key, as a device or workload makes it. With `keyPem`
 * the existing key is reused (a renewal); otherwise a new key is generated. The CA
 * decides the names: the request carries only a common name for people.
 */
export async function createCertificateRequest(options: {
  commonName: string;
  keyPem?: string;
}): Promise<{ keyPem: string; csrPem: string }> {
  const keyPem =
    options.keyPem ??
    generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
  const privateKey = createPrivateKey(keyPem);
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new TypeError('certificate requests are made for P-256 keys');
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = {
    privateKey: await subtle.importKey(
      'pkcs8',
      privateKey.export({ type: 'pkcs8', format: 'der' }),
      algorithm,
      false,
      ['sign'],
    ),
    publicKey: await subtle.importKey(
      'spki',
      createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
      algorithm,
      true,
      ['verify'],
    ),
  };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [options.commonName.slice(0, 64)] }],
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return { keyPem, csrPem: csr.toString('pem') };
}

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CaSealingKey, CertificateAuthority, type InitializeOptions } from '../../src/ca/index.ts';
import { type KeyPair, subtle, x509 } from '../../src/ca/lib/x509.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';

export const TRUST_DOMAIN = 'corp.example';
export const OPENSSL = '/usr/bin/openssl';
const run = promisify(execFile);
/** One folder per test file, made at load so that its clean-up runs when the file ends. */
export const TEST_DIR = tempDir('vigil-ca-');

export type TestKeyType = 'p256' | 'p384' | 'p521' | 'ed25519' | 'rsa1024' | 'rsa2048';

export async function generateKeys(type: TestKeyType): Promise<KeyPair> {
  const params =
    type === 'ed25519'
      ? { name: 'Ed25519' }
      : type.startsWith('rsa')
        ? {
            name: 'RSASSA-PKCS1-v1_5',
            modulusLength: type === 'rsa1024' ? 1024 : 2048,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: 'SHA-256',
          }
        : { name: 'ECDSA', namedCurve: type === 'p256' ? 'P-256' : type === 'p384' ? 'P-384' : 'P-521' };
  return (await subtle.generateKey(params, true, ['sign', 'verify'])) as KeyPair;
}

function signatureFor(type: TestKeyType) {
  if (type === 'ed25519') return { name: 'Ed25519' };
  if (type.startsWith('rsa')) return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return { name: 'ECDSA', hash: type === 'p384' ? 'SHA-384' : type === 'p521' ? 'SHA-512' : 'SHA-256' };
}

/** A CSR as a device or workload would make it, with whatever a test wants to smuggle in. */
export async function makeCsr(
  options: {
    keyType?: TestKeyType;
    keys?: KeyPair;
    names?: x509.JsonGeneralNames;
    extensions?: x509.Extension[];
  } = {},
): Promise<string> {
  const keyType = options.keyType ?? 'p256';
  const keys = options.keys ?? (await generateKeys(keyType));
  const extensions = [...(options.extensions ?? [])];
  if (options.names) extensions.push(new x509.SubjectAlternativeNameExtension(options.names));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: ['test'] }],
    keys,
    signingAlgorithm: signatureFor(keyType),
    extensions,
  });
  return csr.toString('pem');
}

export interface TestCa {
  ca: CertificateAuthority;
  store: Store;
  clock: ManualClock;
  sealingKey: CaSealingKey;
  url: string;
  dir: string;
}

/** A CA in a fresh SQLite store with a frozen clock near now (openssl checks real time). */
export async function makeCa(
  overrides: Partial<InitializeOptions> & { url?: string; clock?: ManualClock } = {},
): Promise<TestCa> {
  const url = overrides.url ?? freshSqliteUrl();
  const store = await openStore(url);
  const clock = overrides.clock ?? new ManualClock(Date.now());
  const sealingKey = overrides.sealingKey ?? CaSealingKey.generate();
  const ca = await CertificateAuthority.initialize({
    trustDomain: TRUST_DOMAIN,
    ...overrides,
    store,
    clock,
    sealingKey,
  });
  return { ca, store, clock, sealingKey, url, dir: TEST_DIR };
}

/** Runs `openssl verify` on a leaf; resolves with its output, rejects on a failed verify. */
export async function opensslVerify(
  dir: string,
  bundlePem: string,
  leafPem: string,
  extra: readonly string[] = [],
): Promise<string> {
  const certs = bundlePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const root = join(dir, `root-${Math.random()}.pem`);
  const untrusted = join(dir, `inter-${Math.random()}.pem`);
  const leaf = join(dir, `leaf-${Math.random()}.pem`);
  writeFileSync(root, certs[0] ?? '');
  writeFileSync(untrusted, certs.slice(1).join('\n'));
  writeFileSync(leaf, leafPem);
  const { stdout } = await run(OPENSSL, ['verify', ...extra, '-CAfile', root, '-untrusted', untrusted, leaf]);
  return stdout;
}

export async function openssl(args: readonly string[]): Promise<string> {
  const { stdout } = await run(OPENSSL, [...args]);
  return stdout;
}

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCertificateRequest } from '../../src/ca/index.ts';
import { DeviceRegistry, type IssuedDevice } from '../../src/device/index.ts';
import type { DeviceRegistryOptions } from '../../src/device/registry.ts';
import { makeCa, type TestCa } from '../ca/helpers.ts';

export { TRUST_DOMAIN } from '../ca/helpers.ts';

export interface DeviceEnv extends TestCa {
  registry: DeviceRegistry;
}

/**
 * A CA and a device registry on a fresh store (`url`, SQLite by default) sharing one
 * frozen clock; closed when the test ends.
 */
export async function deviceEnv(
  t: TestContext,
  options: { url?: string } & Omit<Partial<DeviceRegistryOptions>, 'store' | 'ca' | 'clock'> = {},
): Promise<DeviceEnv> {
  const { url, ...registryOptions } = options;
  const testCa = await makeCa(url === undefined ? {} : { url });
  t.after(async () => {
    testCa.ca.close();
    await testCa.store.close();
  });
  const registry = new DeviceRegistry({
    store: testCa.store,
    ca: testCa.ca,
    clock: testCa.clock,
    ...registryOptions,
  });
  return { ...testCa, registry };
}

/** A device's key and CSR as `vigil device enroll` makes them. */
export async function deviceKey(keyPem?: string): Promise<{ key: KeyObject; keyPem: string; csr: string }> {
  const made = await createCertificateRequest({ commonName: 'laptop', ...(keyPem ? { keyPem } : {}) });
  return { key: createPrivateKey(made.keyPem), keyPem: made.keyPem, csr: made.csrPem };
}

export interface EnrolledTestDevice {
  issued: IssuedDevice;
  key: KeyObject;
  keyPem: string;
}

/** Enrolls one device with a fresh single-use token. */
export async function enroll(
  env: DeviceEnv,
  info: { name?: string; serial?: string; managed?: boolean } = {},
): Promise<EnrolledTestDevice> {
  const { token } = await env.registry.createEnrollmentToken({
    createdBy: 'admin',
    ttlMs: 3_600_000,
    ...(info.managed ? { managed: true } : {}),
  });
  const { key, keyPem, csr } = await deviceKey();
  const issued = await env.registry.enrollWithToken(token, {
    csr,
    name: info.name ?? 'laptop',
    platform: 'linux',
    ...(info.serial ? { serial: info.serial } : {}),
  });
  return { issued, key, keyPem };
}

/** The certificates of a PEM bundle or chain, in order. */
export function certificatesOf(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new X509Certificate(block),
  );
}

/** The leaf (first certificate) of a chain. */
export function leafOf(chainPem: string): X509Certificate {
  const leaf = certificatesOf(chainPem)[0];
  if (leaf === undefined) throw new Error('no certificate in the chain');
  return leaf;
}

/**
 * Resolves once `check` returns true (change feeds deliver asynchronously); fails with
 * `what` after `timeoutMs`.
 */
export async function eventually(check: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(5);
  }
}

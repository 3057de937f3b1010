import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { DeviceBinding, DeviceInventory, DeviceRegistry } from '../../src/device/index.ts';
import { makeCa, makeCsr, TRUST_DOMAIN } from '../ca/helpers.ts';
import { type DeviceEnv, deviceEnv, enroll, eventually, leafOf } from './helpers.ts';

/** A request whose TLS socket presented `certificate` (PEM chain; its leaf is sent) or none. */
function requestWith(certificate: string | undefined, authorized = false): IncomingMessage {
  const raw = certificate === undefined ? undefined : leafOf(certificate).raw;
  const socket = {
    authorized,
    // Node returns an empty object when the peer sent no certificate.
    getPeerCertificate: () => (raw === undefined ? {} : { raw }),
  };
  return { socket } as unknown as IncomingMessage;
}

/** A second request on the same (keep-alive) connection. */
function sameConnection(request: IncomingMessage): IncomingMessage {
  return { socket: request.socket } as unknown as IncomingMessage;
}

async function bound(
  t: TestContext,
): Promise<DeviceEnv & { inventory: DeviceInventory; binding: DeviceBinding }> {
  const e = await deviceEnv(t);
  const inventory = await DeviceInventory.open(e.store);
  t.after(() => inventory.close());
  const binding = new DeviceBinding({ ca: e.ca, inventory, clock: e.clock });
  return { ...e, inventory, binding };
}

describe('device binding', () => {
  it('finds the device of a valid device certificate, as the inventory holds it', async (t) => {
    const e = await bound(t);
    const device = await enroll(e, { managed: true });
    await eventually(() => e.inventory.get(device.issued.deviceId) !== undefined, 'the enrolled device');
    const found = e.binding.resolve(requestWith(device.issued.certificatePem));
    assert.equal(found.refused, undefined);
    assert.equal(found.device, e.inventory.get(device.issued.deviceId));
    assert.deepEqual(found.device, { id: device.issued.deviceId, state: 'managed' });
  });

  it('refuses an expired certificate with cert-expired, also on a connection checked before', async (t) => {
    const e = await bound(t);
    const device = await enroll(e);
    await eventually(() => e.inventory.get(device.issued.deviceId) !== undefined, 'the enrolled device');
    const first = requestWith(device.issued.certificatePem);
    assert.ok(e.binding.resolve(first).device);
    e.clock.set(device.issued.notAfter.getTime() + 1000);
    assert.deepEqual(e.binding.resolve(sameConnection(first)), { refused: 'cert-expired' });
    assert.deepEqual(e.binding.resolve(requestWith(device.issued.certificatePem)), {
      refused: 'cert-expired',
    });
  });

  it('refuses a certificate revoked in the CA with cert-revoked, also on a connection checked before', async (t) => {
    const e = await bound(t);
    const device = await enroll(e);
    await eventually(() => e.inventory.get(device.issued.deviceId) !== undefined, 'the enrolled device');
    const first = requestWith(device.issued.certificatePem);
    assert.ok(e.binding.resolve(first).device);
    await e.ca.revoke(device.issued.serial, 'key-compromise');
    assert.deepEqual(e.binding.resolve(sameConnection(first)), { refused: 'cert-revoked' });
    assert.deepEqual(e.binding.resolve(requestWith(device.issued.certificatePem)), {
      refused: 'cert-revoked',
    });
  });

  it('refuses a revoked internal certificate even though the TLS layer accepted it (it trusts the internal CA)', async (t) => {
    const e = await bound(t);
    const device = await enroll(e);
    await eventually(() => e.inventory.get(device.issued.deviceId) !== undefined, 'the enrolled device');
    await e.ca.revoke(device.issued.serial, 'key-compromise');
    // TLS checks the chain, not revocation: `authorized` is true for every internal-CA cert.
    assert.deepEqual(e.binding.resolve(requestWith(device.issued.certificatePem, true)), {
      refused: 'cert-revoked',
    });
  });

  it('refuses with cert-revoked a device the inventory holds as revoked, before its certificate is', async (t) => {
    const e = await bound(t);
    const device = await enroll(e);
    // A registry without the CA revokes the device but none of its certificates, as a
    // replica sees it when the device event arrives before the certificate revocation.
    const stateOnly = new DeviceRegistry({ store: e.store, clock: e.clock });
    await stateOnly.revoke(device.issued.deviceId, 'lost');
    await eventually(() => e.inventory.get(device.issued.deviceId)?.state === 'revoked', 'the revocation');
    assert.equal(e.ca.isRevoked(device.issued.serial), false);
    assert.deepEqual(e.binding.resolve(requestWith(device.issued.certificatePem)), {
      refused: 'cert-revoked',
    });
  });

  it('refuses with device-unknown a device certificate of a device never enrolled (made with vigil ca issue)', async (t) => {
    const e = await bound(t);
    const orphan = await e.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-0000000000000000' });
    assert.deepEqual(e.binding.resolve(requestWith(orphan.pem)), { refused: 'device-unknown' });
  });

  it('refuses a certificate of another CA with cert-untrusted when the TLS layer did not trust it', async (t) => {
    const e = await bound(t);
    const other = await makeCa();
    t.after(async () => {
      other.ca.close();
      await other.store.close();
    });
    const foreign = await other.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    assert.deepEqual(e.binding.resolve(requestWith(foreign.pem, false)), { refused: 'cert-untrusted' });
  });

  it('finds no device and refuses nothing for a certificate of another CA that the listener trusts', async (t) => {
    const e = await bound(t);
    const other = await makeCa();
    t.after(async () => {
      other.ca.close();
      await other.store.close();
    });
    const foreign = await other.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    assert.deepEqual(e.binding.resolve(requestWith(foreign.pem, true)), {});
  });

  it('finds nothing for a connection without a client certificate or without TLS', async (t) => {
    const e = await bound(t);
    assert.deepEqual(e.binding.resolve(requestWith(undefined)), {});
    assert.deepEqual(e.binding.resolve({ socket: {} } as unknown as IncomingMessage), {});
  });

  it('finds no device for a workload certificate of the internal CA', async (t) => {
    const e = await bound(t);
    const workload = await e.ca.signWorkloadCertificate({
      csr: await makeCsr(),
      spiffeId: `spiffe://${TRUST_DOMAIN}/ns/prod/sa/api`,
    });
    assert.deepEqual(e.binding.resolve(requestWith(workload.pem)), {});
  });
});

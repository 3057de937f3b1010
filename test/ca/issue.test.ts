import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BACKDATE_MS, DEFAULT_DEVICE_TTL_MS, DEFAULT_WORKLOAD_TTL_MS } from '../../src/ca/index.ts';
import { makeCa, makeCsr, opensslVerify, type TestCa, TRUST_DOMAIN } from './helpers.ts';

describe('issuing leaf certificates', () => {
  let t: TestCa;
  before(async () => {
    t = await makeCa();
  });
  after(async () => {
    t.ca.close();
    await t.store.close();
  });

  for (const keyType of ['p256', 'ed25519', 'p384'] as const) {
    it(`a ${keyType} device certificate chains to the root with openssl and node`, async () => {
      const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr({ keyType }), deviceId: 'd-42' });
      const out = await opensslVerify(t.dir, t.ca.bundlePem(), issued.pem, ['-purpose', 'sslclient']);
      assert.match(out, /OK/);
      const [rootPem, interPem] =
        t.ca.bundlePem().match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      const leaf = new X509Certificate(issued.pem);
      const intermediate = new X509Certificate(interPem ?? '');
      const root = new X509Certificate(rootPem ?? '');
      assert.ok(leaf.checkIssued(intermediate));
      assert.ok(leaf.verify(intermediate.publicKey));
      assert.ok(intermediate.checkIssued(root));
      assert.ok(intermediate.verify(root.publicKey));
      assert.equal(leaf.subjectAltName, `URI:spiffe://${TRUST_DOMAIN}/device/d-42`);
      assert.equal(leaf.ca, false);
      assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    });
  }

  it('a device certificate lasts 24 h, backdated 10 s, and says to renew at half-life', async () => {
    const now = t.clock.now();
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    assert.equal(issued.notBefore.getTime(), Math.floor((now - BACKDATE_MS) / 1000) * 1000);
    assert.equal(issued.notAfter.getTime(), Math.floor((now + DEFAULT_DEVICE_TTL_MS) / 1000) * 1000);
    assert.ok(Math.abs(issued.renewAfter.getTime() - (now + DEFAULT_DEVICE_TTL_MS / 2)) < 1000);
  });

  it('a workload certificate carries exactly its SPIFFE ID, server and client auth, 1 h', async () => {
    const now = t.clock.now();
    const spiffeId = `spiffe://${TRUST_DOMAIN}/ns/prod/sa/billing`;
    const issued = await t.ca.signWorkloadCertificate({
      csr: await makeCsr({ names: [{ type: 'url', value: spiffeId }] }),
      spiffeId,
    });
    const leaf = new X509Certificate(issued.pem);
    assert.equal(leaf.subjectAltName, `URI:${spiffeId}`);
    assert.deepEqual(leaf.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(issued.notAfter.getTime(), Math.floor((now + DEFAULT_WORKLOAD_TTL_MS) / 1000) * 1000);
    assert.match(await opensslVerify(t.dir, t.ca.bundlePem(), issued.pem, ['-purpose', 'sslserver']), /OK/);
  });

  it('serial numbers are random positive 128-bit values', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20; i += 1) {
      const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: `d-${i}` });
      assert.match(issued.serial, /^[1-7][0-9a-f]{31}$/);
      assert.equal(new X509Certificate(issued.pem).serialNumber.toLowerCase(), issued.serial);
      serials.add(issued.serial);
    }
    assert.equal(serials.size, 20);
  });

  it('caps the TTL at the intermediate remaining lifetime', async () => {
    const short = await makeCa({ intermediateTtlMs: 2 * 3_600_000 });
    try {
      const issued = await short.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
      const intermediate = short.ca.authorities().find((a) => a.kind === 'intermediate');
      assert.equal(issued.notAfter.getTime(), intermediate?.notAfter.getTime());
      short.clock.advance(3 * 3_600_000);
      await assert.rejects(short.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' }), {
        code: 'ERR_CA_EXPIRED',
      });
    } finally {
      short.ca.close();
      await short.store.close();
    }
  });

  it('uses the configured default TTLs when a call names none', async () => {
    const configured = await makeCa({ defaultTtlMs: { device: 2 * 3_600_000, workload: 600_000 } });
    try {
      const now = configured.clock.now();
      const device = await configured.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
      assert.equal(device.notAfter.getTime(), Math.floor((now + 2 * 3_600_000) / 1000) * 1000);
      const spiffeId = `spiffe://${TRUST_DOMAIN}/svc`;
      const workload = await configured.ca.signWorkloadCertificate({ csr: await makeCsr(), spiffeId });
      assert.equal(workload.notAfter.getTime(), Math.floor((now + 600_000) / 1000) * 1000);
    } finally {
      configured.ca.close();
      await configured.store.close();
    }
  });

  it('rejects a TTL of zero or beyond the maximum', async () => {
    const csr = await makeCsr();
    await assert.rejects(t.ca.signDeviceCertificate({ csr, deviceId: 'd-1', ttlMs: 0 }), {
      code: 'ERR_CA_TTL_INVALID',
    });
    await assert.rejects(t.ca.signDeviceCertificate({ csr, deviceId: 'd-1', ttlMs: 365 * 86_400_000 }), {
      code: 'ERR_CA_TTL_INVALID',
    });
  });

  it('an Ed25519 CA issues chains that openssl accepts', async () => {
    const ed = await makeCa({ algorithm: 'ed25519' });
    try {
      const issued = await ed.ca.signDeviceCertificate({
        csr: await makeCsr({ keyType: 'ed25519' }),
        deviceId: 'd-ed',
      });
      assert.match(await opensslVerify(ed.dir, ed.ca.bundlePem(), issued.pem), /OK/);
    } finally {
      ed.ca.close();
      await ed.store.close();
    }
  });

  it('checkPeerCertificate refuses expired certificates and garbage', async () => {
    const issued = await t.ca.signDeviceCertificate({
      csr: await makeCsr(),
      deviceId: 'd-old',
      ttlMs: 60_000,
    });
    t.clock.advance(120_000);
    assert.deepEqual(t.ca.checkPeerCertificate(issued.pem), { ok: false, reason: 'cert-expired' });
    assert.deepEqual(t.ca.checkPeerCertificate(new Uint8Array([1, 2, 3])), {
      ok: false,
      reason: 'cert-untrusted',
    });
    const bundle =
      t.ca.bundlePem().match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.deepEqual(
      t.ca.checkPeerCertificate(bundle[1] ?? ''),
      { ok: false, reason: 'cert-untrusted' },
      'a CA is no client',
    );
  });

  it('checkPeerCertificate names the device of a valid client certificate', async () => {
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-peer' });
    const check = t.ca.checkPeerCertificate(issued.pem);
    assert.deepEqual(check.ok && { kind: check.kind, id: check.id }, { kind: 'device', id: 'd-peer' });
    const other = await makeCa();
    try {
      const foreign = await other.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-peer' });
      assert.deepEqual(t.ca.checkPeerCertificate(foreign.pem), { ok: false, reason: 'cert-untrusted' });
    } finally {
      other.ca.close();
      await other.store.close();
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_CSR_BYTES } from '../../src/ca/index.ts';
import { x509 } from '../../src/ca/lib/x509.ts';
import { makeCa, makeCsr, type TestCa, TRUST_DOMAIN } from './helpers.ts';

const DEVICE_ID = `spiffe://${TRUST_DOMAIN}/device/d-1`;
const WORKLOAD_ID = `spiffe://${TRUST_DOMAIN}/ns/prod/sa/api`;

describe('CSR checks', () => {
  let t: TestCa;
  before(async () => {
    t = await makeCa();
  });
  after(async () => {
    t.ca.close();
    await t.store.close();
  });

  const device = (csr: string | Uint8Array) => t.ca.signDeviceCertificate({ csr, deviceId: 'd-1' });
  const workload = (csr: string | Uint8Array) => t.ca.signWorkloadCertificate({ csr, spiffeId: WORKLOAD_ID });

  it('accepts a CSR that names exactly the authorized device ID', async () => {
    const issued = await device(await makeCsr({ names: [{ type: 'url', value: DEVICE_ID }] }));
    assert.equal(issued.spiffeId, DEVICE_ID);
  });

  it('rejects an RSA-1024 key with ERR_CA_CSR_KEY_TYPE', async () => {
    await assert.rejects(device(await makeCsr({ keyType: 'rsa1024' })), { code: 'ERR_CA_CSR_KEY_TYPE' });
  });

  it('rejects RSA-2048 unless RSA is enabled', async () => {
    const csr = await makeCsr({ keyType: 'rsa2048' });
    await assert.rejects(device(csr), { code: 'ERR_CA_CSR_KEY_TYPE' });
    const rsa = await makeCa({ csrPolicy: { allowRsa: true } });
    try {
      assert.equal((await rsa.ca.signDeviceCertificate({ csr, deviceId: 'd-1' })).keyType, 'rsa-2048');
      await assert.rejects(
        rsa.ca.signDeviceCertificate({ csr: await makeCsr({ keyType: 'rsa1024' }), deviceId: 'd-1' }),
        {
          code: 'ERR_CA_CSR_KEY_TYPE',
        },
      );
    } finally {
      rsa.ca.close();
      await rsa.store.close();
    }
  });

  it('rejects a P-521 key with ERR_CA_CSR_KEY_TYPE', async () => {
    await assert.rejects(device(await makeCsr({ keyType: 'p521' })), { code: 'ERR_CA_CSR_KEY_TYPE' });
  });

  it('rejects a DNS name beside the URI with ERR_CA_CSR_EXTRA_SAN', async () => {
    const csr = await makeCsr({
      names: [
        { type: 'url', value: DEVICE_ID },
        { type: 'dns', value: 'intranet.corp.example' },
      ],
    });
    await assert.rejects(device(csr), { code: 'ERR_CA_CSR_EXTRA_SAN' });
  });

  it('rejects IP and email names with ERR_CA_CSR_EXTRA_SAN', async () => {
    await assert.rejects(device(await makeCsr({ names: [{ type: 'ip', value: '10.0.0.1' }] })), {
      code: 'ERR_CA_CSR_EXTRA_SAN',
    });
    await assert.rejects(device(await makeCsr({ names: [{ type: 'email', value: 'a@corp.example' }] })), {
      code: 'ERR_CA_CSR_EXTRA_SAN',
    });
  });

  it('rejects a second URI with ERR_CA_CSR_EXTRA_SAN', async () => {
    const csr = await makeCsr({
      names: [
        { type: 'url', value: WORKLOAD_ID },
        { type: 'url', value: `spiffe://${TRUST_DOMAIN}/ns/prod/sa/admin` },
      ],
    });
    await assert.rejects(workload(csr), { code: 'ERR_CA_CSR_EXTRA_SAN' });
  });

  it('rejects the SPIFFE ID of another device with ERR_CA_CSR_SPIFFE_ID_MISMATCH', async () => {
    const csr = await makeCsr({ names: [{ type: 'url', value: `spiffe://${TRUST_DOMAIN}/device/d-2` }] });
    await assert.rejects(device(csr), { code: 'ERR_CA_CSR_SPIFFE_ID_MISMATCH', status: 403 });
  });

  it('rejects the SPIFFE ID of another workload with ERR_CA_CSR_SPIFFE_ID_MISMATCH', async () => {
    const csr = await makeCsr({
      names: [{ type: 'url', value: `spiffe://${TRUST_DOMAIN}/ns/prod/sa/admin` }],
    });
    await assert.rejects(workload(csr), { code: 'ERR_CA_CSR_SPIFFE_ID_MISMATCH' });
  });

  it('rejects the same path in another trust domain with ERR_CA_CSR_SPIFFE_ID_MISMATCH', async () => {
    const csr = await makeCsr({ names: [{ type: 'url', value: 'spiffe://evil.example/device/d-1' }] });
    await assert.rejects(device(csr), { code: 'ERR_CA_CSR_SPIFFE_ID_MISMATCH' });
  });

  it('refuses to authorize a workload ID in another trust domain or the device namespace', async () => {
    const csr = await makeCsr();
    for (const spiffeId of [
      'spiffe://evil.example/ns/a',
      `spiffe://${TRUST_DOMAIN}/device/d-1`,
      'https://corp.example/x',
    ]) {
      await assert.rejects(t.ca.signWorkloadCertificate({ csr, spiffeId }), {
        code: 'ERR_CA_SPIFFE_ID_INVALID',
      });
    }
    await assert.rejects(t.ca.signDeviceCertificate({ csr, deviceId: '../d-1' }), {
      code: 'ERR_CA_SPIFFE_ID_INVALID',
    });
  });

  it('rejects CA:TRUE requested through basicConstraints with ERR_CA_CSR_CA_REQUESTED', async () => {
    const csr = await makeCsr({ extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
    await assert.rejects(device(csr), { code: 'ERR_CA_CSR_CA_REQUESTED' });
  });

  it('rejects keyCertSign requested through key usage with ERR_CA_CSR_CA_REQUESTED', async () => {
    const csr = await makeCsr({
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature),
      ],
    });
    await assert.rejects(workload(csr), { code: 'ERR_CA_CSR_CA_REQUESTED' });
  });

  it('rejects a tampered CSR whose signature no longer matches with ERR_CA_CSR_SIGNATURE', async () => {
    const pem = await makeCsr({ names: [{ type: 'url', value: DEVICE_ID }] });
    const der = new Uint8Array(x509.PemConverter.decodeFirst(pem));
    // Flip one byte inside the URI of the SAN: the structure still parses, the signature does not match.
    const uri = Buffer.from(DEVICE_ID);
    const at = Buffer.from(der).indexOf(uri);
    assert.ok(at > 0);
    der[at + uri.length - 1] = '2'.charCodeAt(0) === der[at + uri.length - 1] ? 0x33 : 0x32;
    await assert.rejects(device(der), { code: 'ERR_CA_CSR_SIGNATURE' });
  });

  it('rejects an oversized CSR with ERR_CA_CSR_TOO_LARGE before parsing', async () => {
    const huge = `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(MAX_CSR_BYTES)}\n-----END CERTIFICATE REQUEST-----\n`;
    await assert.rejects(device(huge), { code: 'ERR_CA_CSR_TOO_LARGE', status: 413 });
  });

  it('rejects garbage with ERR_CA_CSR_INVALID', async () => {
    for (const garbage of [
      'hello',
      '',
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      new Uint8Array([0x30, 0x82, 0xff]),
    ]) {
      await assert.rejects(device(garbage), { code: 'ERR_CA_CSR_INVALID' });
    }
  });

  it('rejects bytes after the request with ERR_CA_CSR_INVALID', async () => {
    const pem = await makeCsr();
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    await assert.rejects(device(new Uint8Array([...der, 0x00])), { code: 'ERR_CA_CSR_INVALID' });
    assert.equal((await device(new Uint8Array(der))).kind, 'device', 'the same request without them is fine');
  });

  it('never echoes CSR content in the public message', async () => {
    await assert.rejects(
      device(await makeCsr({ names: [{ type: 'url', value: 'spiffe://evil.example/device/x' }] })),
      (error: Error & { publicMessage: string }) => {
        assert.doesNotMatch(error.publicMessage, /evil/);
        return true;
      },
    );
  });
});

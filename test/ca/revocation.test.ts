import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CertificateAuthority, CRL_VALIDITY_MS } from '../../src/ca/index.ts';
import { openStore } from '../../src/store/index.ts';
import { freshPostgresUrl } from '../support/databases.ts';
import { makeCa, makeCsr, openssl, opensslVerify, TEST_DIR } from './helpers.ts';

describe('revocation', () => {
  it('a revoked serial is in the DER CRL signed by the intermediate, and openssl then refuses the leaf', async () => {
    const t = await makeCa();
    const keep = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-keep' });
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-lost' });
    assert.equal(t.ca.isRevoked(issued.serial), false);
    const revoked = await t.ca.revoke(issued.serial, 'key-compromise');
    assert.equal(revoked.reason, 'key-compromise');
    assert.equal(t.ca.isRevoked(issued.serial), true);
    assert.equal(t.ca.isRevoked(issued.serial.toUpperCase()), true, 'Node prints serials in uppercase');
    assert.equal(t.ca.isRevoked(keep.serial), false);

    const crl = await t.ca.crl();
    assert.equal(crl.entries, 1);
    assert.equal(crl.nextUpdate.getTime() - crl.thisUpdate.getTime(), CRL_VALIDITY_MS);
    const derFile = join(TEST_DIR, `crl-${process.hrtime.bigint()}.der`);
    writeFileSync(derFile, crl.der);
    const text = await openssl(['crl', '-inform', 'DER', '-in', derFile, '-noout', '-text']);
    assert.match(text, new RegExp(`Serial Number: ${issued.serial.toUpperCase()}`));
    assert.match(text, /Key Compromise/);
    assert.match(text, /Next Update:/);
    assert.match(text, /Intermediate CA/);

    const crlPem = join(TEST_DIR, `crl-${process.hrtime.bigint()}.pem`);
    writeFileSync(crlPem, crl.pem);
    await assert.rejects(
      opensslVerify(t.dir, t.ca.bundlePem(), issued.pem, ['-crl_check', '-CRLfile', crlPem]),
      /revoked/,
    );
    assert.match(
      await opensslVerify(t.dir, t.ca.bundlePem(), keep.pem, ['-crl_check', '-CRLfile', crlPem]),
      /OK/,
    );
    assert.deepEqual(t.ca.checkPeerCertificate(issued.pem), { ok: false, reason: 'cert-revoked' });

    const row = await t.store.db
      .selectFrom('ca_certificates')
      .selectAll()
      .where('serial', '=', issued.serial)
      .executeTakeFirstOrThrow();
    assert.equal(row.revoked_reason, 'key-compromise');
    assert.equal(row.revoked_at, t.clock.now());
    t.ca.close();
    await t.store.close();
  });

  it('re-signs the CRL on revocation and after half its validity', async () => {
    const t = await makeCa();
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    const before = await t.ca.crl();
    assert.equal(before.entries, 0);
    await t.ca.revoke(issued.serial, 'superseded');
    assert.equal((await t.ca.crl()).entries, 1);
    t.clock.advance(CRL_VALIDITY_MS / 2 + 1000);
    const later = await t.ca.crl();
    assert.ok(later.thisUpdate.getTime() > before.thisUpdate.getTime());
    assert.equal(later.entries, 1);
    t.ca.close();
    await t.store.close();
  });

  it('publishes the revocation on the change feed', async () => {
    const t = await makeCa();
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    const seen: unknown[] = [];
    t.store.changes.subscribe('revocation', (event) => seen.push({ action: event.action, id: event.id }));
    await t.ca.revoke(issued.serial, 'superseded');
    assert.deepEqual(seen, [{ action: 'revoked', id: issued.serial }]);
    t.ca.close();
    await t.store.close();
  });

  it('revoking twice keeps the first revocation; unknown serials and reasons are refused', async () => {
    const t = await makeCa();
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    const first = await t.ca.revoke(issued.serial, 'superseded');
    t.clock.advance(5000);
    const second = await t.ca.revoke(issued.serial, 'key-compromise');
    assert.deepEqual(second, first);
    await assert.rejects(t.ca.revoke('7f'.repeat(16)), { code: 'ERR_CA_CERT_NOT_FOUND', status: 404 });
    await assert.rejects(t.ca.revoke('not a serial'), { code: 'ERR_CA_CERT_NOT_FOUND' });
    await assert.rejects(t.ca.revoke(issued.serial, 'because'), { code: 'ERR_CA_REVOKE_REASON' });
    t.ca.close();
    await t.store.close();
  });

  it('a second CA instance on the same PostgreSQL learns of a revocation within 2 s', async () => {
    const url = freshPostgresUrl();
    const a = await makeCa({ url });
    const storeB = await openStore(url);
    const b = await CertificateAuthority.open({ store: storeB, sealingKey: a.sealingKey, clock: a.clock });
    try {
      const issued = await a.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
      assert.equal(b.isRevoked(issued.serial), false);
      const started = Date.now();
      await a.ca.revoke(issued.serial, 'key-compromise');
      while (!b.isRevoked(issued.serial) && Date.now() - started < 2000) await sleep(10);
      assert.equal(b.isRevoked(issued.serial), true, 'replica b saw the revocation within 2 s');
      assert.equal((await b.crl()).entries, 1, "replica b's CRL lists it too");

      // A replica that starts later reads revocations from the store.
      const storeC = await openStore(url);
      const c = await CertificateAuthority.open({ store: storeC, sealingKey: a.sealingKey, clock: a.clock });
      assert.equal(c.isRevoked(issued.serial), true);
      c.close();
      await storeC.close();
    } finally {
      a.ca.close();
      b.close();
      await a.store.close();
      await storeB.close();
    }
  });
});

describe('intermediate rotation', () => {
  it('after prepare and activate, new leaves chain to the new intermediate and old leaves still verify', async () => {
    const t = await makeCa();
    const old = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-old' });
    const oldIssuer = old.issuerId;
    const next = await t.ca.prepareNext();
    assert.equal(next.slot, 'next');
    assert.equal(t.ca.bundlePem().match(/BEGIN CERTIFICATE/g)?.length, 3, 'root, current, next');
    // Until activation the current intermediate keeps signing.
    assert.equal(
      (await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-x' })).issuerId,
      oldIssuer,
    );
    await assert.rejects(t.ca.prepareNext(), { code: 'ERR_CA_ROTATION' });

    t.clock.advance(1000);
    const active = await t.ca.activateNext();
    assert.equal(active.id, next.id);
    assert.equal(active.slot, 'current');
    await assert.rejects(t.ca.activateNext(), { code: 'ERR_CA_ROTATION' });

    const fresh = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-new' });
    assert.equal(fresh.issuerId, next.id);
    assert.notEqual(fresh.issuerId, oldIssuer);
    const bundle = t.ca.bundlePem();
    assert.match(await opensslVerify(t.dir, bundle, fresh.pem), /OK/);
    assert.match(await opensslVerify(t.dir, bundle, old.pem), /OK/);
    assert.equal(t.ca.checkPeerCertificate(old.pem).ok, true);

    const retired = t.ca.authorities().find((a) => a.id === oldIssuer);
    assert.equal(retired?.slot, 'retired');
    assert.equal(retired?.bundleUntil?.getTime(), old.notAfter.getTime());

    // The retired intermediate still signs the CRL for its own leaves.
    await t.ca.revoke(old.serial, 'superseded');
    assert.equal((await t.ca.crl(oldIssuer)).entries, 1);
    assert.equal((await t.ca.crl()).entries, 0);

    // Once its last leaf has expired it leaves the bundle.
    t.clock.set(old.notAfter.getTime() + 1000);
    assert.equal(t.ca.bundlePem().match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.equal((await t.ca.bundleJwks()).keys.length, 2);

    // A restart loads the rotated state.
    t.ca.close();
    const reopened = await CertificateAuthority.open({
      store: t.store,
      sealingKey: t.sealingKey,
      clock: t.clock,
    });
    assert.equal(
      reopened.authorities().find((a) => a.slot === 'current' && a.kind === 'intermediate')?.id,
      next.id,
    );
    reopened.close();
    await t.store.close();
  });

  it('a second replica on PostgreSQL follows a rotation within 2 s', async () => {
    const url = freshPostgresUrl();
    const a = await makeCa({ url });
    const storeB = await openStore(url);
    const b = await CertificateAuthority.open({ store: storeB, sealingKey: a.sealingKey, clock: a.clock });
    try {
      const count = () => b.bundlePem().match(/BEGIN CERTIFICATE/g)?.length ?? 0;
      assert.equal(count(), 2);
      const next = await a.ca.prepareNext();
      const started = Date.now();
      while (count() !== 3 && Date.now() - started < 2000) await sleep(10);
      assert.equal(count(), 3, 'replica b trusts the next intermediate');
      await a.ca.activateNext();
      while (
        (await b.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-b' })).issuerId !== next.id
      ) {
        assert.ok(Date.now() - started < 4000, 'replica b signs with the new intermediate');
        await sleep(20);
      }
    } finally {
      a.ca.close();
      b.close();
      await a.store.close();
      await storeB.close();
    }
  });

  it('the JWKS bundle carries each certificate in x5c', async () => {
    const t = await makeCa();
    const jwks = await t.ca.bundleJwks();
    assert.equal(jwks.keys.length, 2);
    for (const key of jwks.keys) {
      assert.equal(key.kty, 'EC');
      assert.equal(key.crv, 'P-256');
      assert.equal(key.use, 'x509-svid');
      assert.equal(key.d, undefined);
      assert.equal((key.x5c as string[]).length, 1);
    }
    t.ca.close();
    await t.store.close();
  });
});

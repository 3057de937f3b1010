import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { x509 } from '../../src/ca/lib/x509.ts';
import {
  AUTHORIZATION_INTERVAL_S,
  DeviceRegistry,
  normalizeUserCode,
  POSTURE_REPORT_TYPE,
  RENEWAL_REQUEST_TYPE,
  signDeviceRequest,
} from '../../src/device/index.ts';
import { MAX_PENDING_AUTHORIZATIONS } from '../../src/device/registry.ts';
import { MAX_SIGNED_REQUEST_BYTES } from '../../src/device/report.ts';
import { makeCsr } from '../ca/helpers.ts';
import { STORE_TARGETS } from '../support/databases.ts';
import {
  certificatesOf,
  type DeviceEnv,
  deviceEnv,
  deviceKey,
  type EnrolledTestDevice,
  enroll,
  leafOf,
  TRUST_DOMAIN,
} from './helpers.ts';

const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
const MINUTE = 60_000;

const report = (env: DeviceEnv, device: EnrolledTestDevice, posture: Record<string, unknown>, at?: number) =>
  signDeviceRequest(
    device.key,
    device.issued.deviceId,
    POSTURE_REPORT_TYPE,
    { posture },
    at ?? env.clock.now(),
  );

describe('normalizeUserCode', () => {
  it('accepts a user code in any case, with or without the dash or spaces', () => {
    assert.equal(normalizeUserCode('bcdf-ghjk'), 'BCDF-GHJK');
    assert.equal(normalizeUserCode('bcdfghjk'), 'BCDF-GHJK');
    assert.equal(normalizeUserCode(' BCDF GHJK '), 'BCDF-GHJK');
  });

  it('refuses codes of another length or with letters outside the alphabet', () => {
    assert.equal(normalizeUserCode('BCDF-GHJ'), undefined);
    assert.equal(normalizeUserCode('BCDF-GHJKL'), undefined);
    assert.equal(normalizeUserCode('ABCD-EFGH'), undefined, 'vowels are not in the alphabet');
    assert.equal(normalizeUserCode('BCD1-GHJK'), undefined);
  });
});

for (const target of STORE_TARGETS) {
  const env = (t: Parameters<typeof deviceEnv>[0], options: Parameters<typeof deviceEnv>[1] = {}) =>
    deviceEnv(t, { url: target.freshUrl(), ...options });

  describe(`device registry on ${target.name}`, () => {
    describe('enrollment token', () => {
      it('enrolls a registered device whose chain verifies against the CA bundle and names its SPIFFE ID', async (t) => {
        const e = await env(t);
        const created = await e.registry.createEnrollmentToken({ createdBy: 'admin', ttlMs: MINUTE });
        assert.match(created.token, /^vet_[0-9a-f]{12}_/);
        const { key, csr } = await deviceKey();
        const issued = await e.registry.enrollWithToken(created.token, {
          csr,
          name: 'alice-laptop',
          serial: 'C02XYZ',
          platform: 'macos',
        });

        assert.match(issued.deviceId, /^d-[0-9a-f]{16}$/);
        assert.equal(issued.state, 'registered');
        const spiffeId = `spiffe://${TRUST_DOMAIN}/device/${issued.deviceId}`;
        assert.equal(issued.spiffeId, spiffeId);
        assert.equal(issued.bundlePem, e.ca.bundlePem());

        const [leaf, intermediate, ...rest] = certificatesOf(issued.certificatePem);
        assert.ok(leaf && intermediate, 'chain is leaf then intermediate');
        assert.equal(rest.length, 0);
        assert.equal(leaf.subjectAltName, `URI:${spiffeId}`);
        assert.equal(leaf.ca, false);
        assert.equal(leaf.serialNumber.toLowerCase(), issued.serial.toLowerCase());
        assert.ok(leaf.publicKey.equals(createPublicKey(key)), 'the certificate carries the device key');
        assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
        const root = certificatesOf(e.ca.bundlePem()).find(
          (candidate) => candidate.subject === candidate.issuer && intermediate.checkIssued(candidate),
        );
        assert.ok(root, 'the bundle holds the root that issued the intermediate');
        assert.ok(intermediate.verify(root.publicKey));

        const record = await e.registry.get(issued.deviceId);
        assert.equal(record.state, 'registered');
        assert.equal(record.managedBy, null);
        assert.equal(record.userId, null);
        assert.equal(record.name, 'alice-laptop');
        assert.equal(record.serial, 'C02XYZ');
        assert.equal(record.platform, 'macos');
        assert.equal(record.certSerial, issued.serial);
        assert.equal(record.certNotAfter, issued.notAfter.getTime());
      });

      it('refuses a single-use token the second time with ERR_DEVICE_TOKEN_INVALID', async (t) => {
        const e = await env(t);
        const { token } = await e.registry.createEnrollmentToken({ createdBy: 'admin', ttlMs: MINUTE });
        await e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'one' });
        await assert.rejects(
          e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'two' }),
          {
            code: 'ERR_DEVICE_TOKEN_INVALID',
            status: 401,
          },
        );
        assert.deepEqual(
          (await e.registry.list()).map((device) => device.name),
          ['one'],
        );
      });

      it('spends a token with uses=1 once when two enrollments race for it', async (t) => {
        const e = await env(t);
        const { token } = await e.registry.createEnrollmentToken({ createdBy: 'admin', ttlMs: MINUTE });
        const [a, b] = [await deviceKey(), await deviceKey()];
        const results = await Promise.allSettled([
          e.registry.enrollWithToken(token, { csr: a.csr, name: 'a' }),
          e.registry.enrollWithToken(token, { csr: b.csr, name: 'b' }),
        ]);
        assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
        const refused = results.find((result) => result.status === 'rejected');
        assert.equal((refused?.reason as { code?: string } | undefined)?.code, 'ERR_DEVICE_TOKEN_INVALID');
        assert.equal((await e.registry.list()).length, 1);
      });

      it('enrolls as many devices as a token has uses, then refuses', async (t) => {
        const e = await env(t);
        const { token } = await e.registry.createEnrollmentToken({
          createdBy: 'admin',
          ttlMs: MINUTE,
          maxUses: 2,
        });
        await e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'one' });
        await e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'two' });
        await assert.rejects(
          e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'three' }),
          { code: 'ERR_DEVICE_TOKEN_INVALID' },
        );
      });

      it('refuses a token once its ttl has passed', async (t) => {
        const e = await env(t);
        const { token } = await e.registry.createEnrollmentToken({
          createdBy: 'admin',
          ttlMs: MINUTE,
          maxUses: 2,
        });
        e.clock.advance(MINUTE - 1);
        await e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'in-time' });
        e.clock.advance(1);
        await assert.rejects(
          e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'late' }),
          {
            code: 'ERR_DEVICE_TOKEN_INVALID',
          },
        );
      });

      it('makes the device managed by token:<id> when the token says managed', async (t) => {
        const e = await env(t);
        const created = await e.registry.createEnrollmentToken({
          createdBy: 'admin',
          ttlMs: MINUTE,
          managed: true,
        });
        assert.equal(created.managed, true);
        const issued = await e.registry.enrollWithToken(created.token, {
          csr: (await deviceKey()).csr,
          name: 'fleet-01',
        });
        assert.equal(issued.state, 'managed');
        const record = await e.registry.get(issued.deviceId);
        assert.equal(record.state, 'managed');
        assert.equal(record.managedBy, `token:${created.id}`);
      });

      it('makes every enrolled device managed (by auto) with autoApprove', async (t) => {
        const e = await env(t, { autoApprove: true });
        const { issued } = await enroll(e);
        assert.equal(issued.state, 'managed');
        assert.equal((await e.registry.get(issued.deviceId)).managedBy, 'auto');
      });

      it('refuses an unknown or over-long token without registering a device', async (t) => {
        const e = await env(t);
        const { csr } = await deviceKey();
        await assert.rejects(e.registry.enrollWithToken('vet_000000000000_nothing', { csr, name: 'x' }), {
          code: 'ERR_DEVICE_TOKEN_INVALID',
          status: 401,
        });
        await assert.rejects(e.registry.enrollWithToken('x'.repeat(300), { csr, name: 'x' }), {
          code: 'ERR_DEVICE_TOKEN_INVALID',
        });
        assert.equal((await e.registry.list()).length, 0);
      });

      it('refuses a CSR asking for CA:TRUE or an extra SAN before spending the token', async (t) => {
        const e = await env(t);
        const { token } = await e.registry.createEnrollmentToken({ createdBy: 'admin', ttlMs: MINUTE });
        const caCsr = await makeCsr({
          extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
        });
        await assert.rejects(e.registry.enrollWithToken(token, { csr: caCsr, name: 'x' }), {
          code: 'ERR_CA_CSR_CA_REQUESTED',
        });
        const sanCsr = await makeCsr({ names: [{ type: 'dns', value: 'intranet.corp.example' }] });
        await assert.rejects(e.registry.enrollWithToken(token, { csr: sanCsr, name: 'x' }), {
          code: 'ERR_CA_CSR_EXTRA_SAN',
        });
        assert.equal((await e.registry.list()).length, 0);
        // The refused CSRs did not use up the single-use token.
        await e.registry.enrollWithToken(token, { csr: (await deviceKey()).csr, name: 'good' });
      });

      it('refuses a name, serial or platform out of bounds with a 400', async (t) => {
        const e = await env(t);
        const { token } = await e.registry.createEnrollmentToken({ createdBy: 'admin', ttlMs: MINUTE });
        const { csr } = await deviceKey();
        for (const info of [
          { csr, name: '' },
          { csr, name: 'n'.repeat(129) },
          { csr, name: 'ok', serial: 's'.repeat(129) },
          { csr, name: 'ok', platform: 'plan9' },
        ]) {
          await assert.rejects(e.registry.enrollWithToken(token, info), {
            code: 'ERR_HTTP_BAD_REQUEST',
            status: 400,
          });
        }
      });
    });

    describe('device authorization grant', () => {
      const start = async (e: DeviceEnv) => {
        const { key, csr } = await deviceKey();
        const started = await e.registry.startAuthorization({ csr, name: 'bob-laptop', platform: 'linux' });
        return { key, ...started };
      };

      it('answers authorization_pending, then slow_down to a poll within the interval', async (t) => {
        const e = await env(t);
        const started = await start(e);
        assert.match(started.userCode, USER_CODE);
        assert.equal(started.intervalS, AUTHORIZATION_INTERVAL_S);
        assert.equal(started.expiresAt, e.clock.now() + 600_000);
        assert.deepEqual(await e.registry.pollAuthorization(started.deviceCode), {
          status: 'authorization_pending',
        });
        e.clock.advance(100);
        assert.deepEqual(await e.registry.pollAuthorization(started.deviceCode), { status: 'slow_down' });
        e.clock.advance(AUTHORIZATION_INTERVAL_S * 1000);
        assert.deepEqual(await e.registry.pollAuthorization(started.deviceCode), {
          status: 'authorization_pending',
        });
      });

      it('shows the pending grant for its user code, typed in lower case without the dash', async (t) => {
        const e = await env(t);
        const started = await start(e);
        const typed = started.userCode.toLowerCase().replace('-', '');
        const pending = await e.registry.pendingAuthorization(typed);
        assert.equal(pending?.userCode, started.userCode);
        assert.equal(pending?.name, 'bob-laptop');
        assert.equal(pending?.platform, 'linux');
        assert.equal(await e.registry.pendingAuthorization('BCDF-GHJK'), undefined);
      });

      it('issues the certificate once, to the approving user, after approval by a normalized user code', async (t) => {
        const e = await env(t);
        const started = await start(e);
        const typed = started.userCode.toLowerCase().replace('-', '');
        assert.equal(await e.registry.decideAuthorization(typed, 'user-alice', true), true);
        const result = await e.registry.pollAuthorization(started.deviceCode);
        assert.equal(result.status, 'issued');
        assert.ok(result.status === 'issued');
        const leaf = leafOf(result.device.certificatePem);
        assert.equal(leaf.subjectAltName, `URI:spiffe://${TRUST_DOMAIN}/device/${result.device.deviceId}`);
        const record = await e.registry.get(result.device.deviceId);
        assert.equal(record.userId, 'user-alice');
        assert.equal(record.state, 'registered');
        assert.equal(record.name, 'bob-laptop');
        e.clock.advance(AUTHORIZATION_INTERVAL_S * 1000);
        assert.deepEqual(await e.registry.pollAuthorization(started.deviceCode), { status: 'invalid_grant' });
        assert.equal(await e.registry.decideAuthorization(started.userCode, 'user-mallory', true), false);
        assert.equal((await e.registry.list()).length, 1);
      });

      it('issues once when two polls of an approved grant race', async (t) => {
        const e = await env(t);
        const started = await start(e);
        await e.registry.decideAuthorization(started.userCode, 'user-alice', true);
        const results = await Promise.all([
          e.registry.pollAuthorization(started.deviceCode),
          e.registry.pollAuthorization(started.deviceCode),
        ]);
        assert.deepEqual(results.map((result) => result.status).sort(), ['invalid_grant', 'issued']);
        assert.equal((await e.registry.list()).length, 1);
      });

      it('answers access_denied to the poll of a denied grant', async (t) => {
        const e = await env(t);
        const started = await start(e);
        assert.equal(await e.registry.decideAuthorization(started.userCode, 'user-alice', false), true);
        assert.deepEqual(await e.registry.pollAuthorization(started.deviceCode), { status: 'access_denied' });
        assert.equal(await e.registry.decideAuthorization(started.userCode, 'user-alice', true), false);
        assert.equal((await e.registry.list()).length, 0);
      });

      it('answers expired_token once the grant expired, and no longer takes a decision', async (t) => {
        const e = await env(t, { authorizationTtlMs: 5 * MINUTE });
        const started = await start(e);
        e.clock.advance(5 * MINUTE);
        assert.equal(await e.registry.decideAuthorization(started.userCode, 'user-alice', true), false);
        assert.equal(await e.registry.pendingAuthorization(started.userCode), undefined);
        assert.deepEqual(await e.registry.pollAuthorization(started.deviceCode), { status: 'expired_token' });
      });

      it('answers invalid_grant to an unknown, empty or over-long device code', async (t) => {
        const e = await env(t);
        await start(e);
        for (const code of ['unknown-device-code', '', 'x'.repeat(129)]) {
          assert.deepEqual(await e.registry.pollAuthorization(code), { status: 'invalid_grant' });
        }
      });

      it('answers ERR_DEVICE_UNAVAILABLE (503) to enrollment on a server without the internal CA', async (t) => {
        const e = await env(t);
        const withoutCa = new DeviceRegistry({ store: e.store, clock: e.clock });
        const { csr } = await deviceKey();
        await assert.rejects(withoutCa.startAuthorization({ csr, name: 'x' }), {
          code: 'ERR_DEVICE_UNAVAILABLE',
          status: 503,
        });
        const { token } = await withoutCa.createEnrollmentToken({ createdBy: 'admin', ttlMs: MINUTE });
        await assert.rejects(withoutCa.enrollWithToken(token, { csr, name: 'x' }), {
          code: 'ERR_DEVICE_UNAVAILABLE',
        });
      });

      it('refuses a new grant with 429 while MAX_PENDING_AUTHORIZATIONS grants wait, not counting expired ones', async (t) => {
        const e = await env(t);
        const now = e.clock.now();
        const rows = Array.from({ length: MAX_PENDING_AUTHORIZATIONS }, (_, index) => ({
          id: `flood-${index}`,
          device_code_sha256: `flood-${index}`,
          user_code: `FLOOD-${index}`,
          name: 'flood',
          serial: null,
          platform: null,
          csr_pem: '',
          status: 'pending',
          user_id: null,
          device_id: null,
          created_at: now,
          // The first one expires before the others.
          expires_at: now + (index === 0 ? 1000 : 600_000),
          polled_at: null,
        }));
        await e.store.db.insertInto('device_authorizations').values(rows).execute();
        const { csr } = await deviceKey();
        await assert.rejects(e.registry.startAuthorization({ csr, name: 'one-too-many' }), {
          code: 'ERR_DEVICE_AUTHORIZATION',
          status: 429,
        });
        e.clock.advance(1000);
        const started = await e.registry.startAuthorization({ csr, name: 'fits-again' });
        assert.match(started.userCode, USER_CODE);
      });

      it('refuses to start a grant for a CSR asking for CA:TRUE', async (t) => {
        const e = await env(t);
        const csr = await makeCsr({
          extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
        });
        await assert.rejects(e.registry.startAuthorization({ csr, name: 'x' }), {
          code: 'ERR_CA_CSR_CA_REQUESTED',
        });
      });
    });

    describe('signed posture reports', () => {
      it('stores an accepted report as the agent posture of the device', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const jws = await report(e, device, { osFamily: 'linux', osVersion: '6.8', diskEncrypted: true });
        const accepted = await e.registry.acceptReport(jws);
        assert.equal(accepted.deviceId, device.issued.deviceId);
        assert.equal(accepted.state, 'registered');
        assert.equal(accepted.reportedAt, Math.floor(e.clock.now() / 1000) * 1000);
        assert.deepEqual(await e.registry.postureOf(device.issued.deviceId), [
          {
            source: 'agent',
            reportedAt: accepted.reportedAt,
            data: { osFamily: 'linux', osVersion: '6.8', diskEncrypted: true },
          },
        ]);
      });

      it('refuses the same signed report a second time with ERR_DEVICE_REPORT_REPLAYED (409)', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const jws = await report(e, device, { firewall: true });
        await e.registry.acceptReport(jws);
        await assert.rejects(e.registry.acceptReport(jws), {
          code: 'ERR_DEVICE_REPORT_REPLAYED',
          status: 409,
        });
        // A fresh report (new jti) is still taken.
        await e.registry.acceptReport(await report(e, device, { firewall: false }));
      });

      it('accepts a report once when the same JWS is posted twice at the same time', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const jws = await report(e, device, { firewall: true });
        const results = await Promise.allSettled([
          e.registry.acceptReport(jws),
          e.registry.acceptReport(jws),
        ]);
        assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
        const refused = results.find((result) => result.status === 'rejected');
        assert.equal((refused?.reason as { code?: string } | undefined)?.code, 'ERR_DEVICE_REPORT_REPLAYED');
      });

      it('refuses a report signed by another key with ERR_DEVICE_REPORT_INVALID (401)', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
        const jws = await signDeviceRequest(
          other,
          device.issued.deviceId,
          POSTURE_REPORT_TYPE,
          { posture: {} },
          e.clock.now(),
        );
        await assert.rejects(e.registry.acceptReport(jws), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          status: 401,
        });
        assert.deepEqual(await e.registry.postureOf(device.issued.deviceId), []);
      });

      it('refuses a renewal request posted as a posture report (wrong typ)', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const jws = await signDeviceRequest(
          device.key,
          device.issued.deviceId,
          RENEWAL_REQUEST_TYPE,
          { posture: {} },
          e.clock.now(),
        );
        await assert.rejects(e.registry.acceptReport(jws), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          message: /expected typ vigil-posture\+jwt/,
        });
      });

      it('refuses a report issued further from the server clock than posture_max_skew', async (t) => {
        const skew = 5 * MINUTE;
        const e = await env(t, { postureMaxSkewMs: skew });
        const device = await enroll(e);
        const now = e.clock.now();
        for (const at of [now - skew - 2000, now + skew + 2000]) {
          await assert.rejects(e.registry.acceptReport(await report(e, device, {}, at)), {
            code: 'ERR_DEVICE_REPORT_INVALID',
            status: 401,
          });
        }
        await e.registry.acceptReport(await report(e, device, {}, now - skew + 2000));
      });

      it('answers ERR_DEVICE_NOT_FOUND to a report whose kid names no device', async (t) => {
        const e = await env(t);
        const { key } = await deviceKey();
        const jws = await signDeviceRequest(
          key,
          'd-0000000000000000',
          POSTURE_REPORT_TYPE,
          { posture: {} },
          e.clock.now(),
        );
        await assert.rejects(e.registry.acceptReport(jws), { code: 'ERR_DEVICE_NOT_FOUND', status: 404 });
      });

      it('refuses a signed report above the size limit before verifying it', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const jws = await signDeviceRequest(
          device.key,
          device.issued.deviceId,
          POSTURE_REPORT_TYPE,
          { posture: {}, padding: 'x'.repeat(MAX_SIGNED_REQUEST_BYTES) },
          e.clock.now(),
        );
        await assert.rejects(e.registry.acceptReport(jws), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          status: 413,
        });
      });

      it('refuses a report with a posture outside the schema, naming the field', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        await assert.rejects(e.registry.acceptReport(await report(e, device, { osVersion: 'latest' })), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          status: 400,
          message: /posture\.osVersion/,
        });
      });

      it('refuses a report of a revoked device with ERR_DEVICE_REVOKED', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const jws = await report(e, device, { firewall: true });
        await e.registry.revoke(device.issued.deviceId, 'lost');
        await assert.rejects(e.registry.acceptReport(jws), { code: 'ERR_DEVICE_REVOKED', status: 403 });
      });

      it('refuses a report signed with the key of an expired certificate, asking to enroll again', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        e.clock.set(device.issued.notAfter.getTime());
        await assert.rejects(e.registry.acceptReport(await report(e, device, {})), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          status: 401,
          message: /enroll again/,
        });
      });

      it('refuses a report signed with the key of a certificate revoked in the CA', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        await e.ca.revoke(device.issued.serial, 'key-compromise');
        await assert.rejects(e.registry.acceptReport(await report(e, device, {})), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          status: 401,
        });
      });

      it('does not make a device managed or compliant on its own word (agent reports managed/compliant: true)', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const accepted = await e.registry.acceptReport(
          await report(e, device, { managed: true, compliant: true, firewall: true }),
        );
        assert.equal(accepted.state, 'registered');
        const record = await e.registry.get(device.issued.deviceId);
        assert.equal(record.state, 'registered');
        assert.equal(record.managedBy, null);
        const [stored] = await e.registry.postureOf(device.issued.deviceId);
        assert.deepEqual(stored?.data, { firewall: true });
      });
    });

    describe('renewal', () => {
      it('issues a new certificate for the same device to a signed renewal, and the new key signs from then on', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const next = await deviceKey();
        e.clock.advance(MINUTE);
        const jws = await signDeviceRequest(
          device.key,
          device.issued.deviceId,
          RENEWAL_REQUEST_TYPE,
          { csr: next.csr },
          e.clock.now(),
        );
        const renewed = await e.registry.renew(jws);
        assert.equal(renewed.deviceId, device.issued.deviceId);
        assert.equal(renewed.spiffeId, device.issued.spiffeId);
        assert.notEqual(renewed.serial, device.issued.serial);
        assert.ok(renewed.notAfter.getTime() > device.issued.notAfter.getTime());
        const leaf = leafOf(renewed.certificatePem);
        assert.equal(leaf.subjectAltName, `URI:${device.issued.spiffeId}`);
        assert.equal((await e.registry.get(device.issued.deviceId)).certSerial, renewed.serial);

        await e.registry.acceptReport(await report(e, { ...device, key: next.key }, { firewall: true }));
        await assert.rejects(e.registry.acceptReport(await report(e, device, { firewall: true })), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          status: 401,
        });
      });

      it('refuses the same renewal request twice with ERR_DEVICE_REPORT_REPLAYED', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        // The same key renews, so the replayed request still verifies and reaches the replay check.
        const same = await deviceKey(device.keyPem);
        const jws = await signDeviceRequest(
          device.key,
          device.issued.deviceId,
          RENEWAL_REQUEST_TYPE,
          { csr: same.csr },
          e.clock.now(),
        );
        await e.registry.renew(jws);
        await assert.rejects(e.registry.renew(jws), { code: 'ERR_DEVICE_REPORT_REPLAYED', status: 409 });
      });

      it('refuses a renewal whose CSR asks for the SPIFFE ID of another device', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const victim = await enroll(e);
        const csr = await makeCsr({ names: [{ type: 'url', value: victim.issued.spiffeId }] });
        const jws = await signDeviceRequest(
          device.key,
          device.issued.deviceId,
          RENEWAL_REQUEST_TYPE,
          { csr },
          e.clock.now(),
        );
        await assert.rejects(e.registry.renew(jws), { code: 'ERR_CA_CSR_SPIFFE_ID_MISMATCH' });
        assert.equal((await e.registry.get(device.issued.deviceId)).certSerial, device.issued.serial);
      });

      it('refuses a posture report posted as a renewal', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        await assert.rejects(e.registry.renew(await report(e, device, {})), {
          code: 'ERR_DEVICE_REPORT_INVALID',
          message: /expected typ vigil-renewal\+jwt/,
        });
      });
    });

    describe('revocation', () => {
      it('revokes the device, every unexpired certificate of it, and ends its sessions', async (t) => {
        const calls: [string, string][] = [];
        const e = await env(t, {
          onRevoked: async (id, reason) => {
            calls.push([id, reason]);
          },
        });
        const device = await enroll(e);
        const bystander = await enroll(e);
        const renewed = await e.registry.renew(
          await signDeviceRequest(
            device.key,
            device.issued.deviceId,
            RENEWAL_REQUEST_TYPE,
            { csr: (await deviceKey(device.keyPem)).csr },
            e.clock.now(),
          ),
        );
        const record = await e.registry.revoke(device.issued.deviceId, 'lost');
        assert.equal(record.state, 'revoked');
        assert.equal(record.revokedReason, 'lost');
        assert.equal(record.revokedAt, e.clock.now());
        assert.equal(e.ca.isRevoked(device.issued.serial), true, 'the first certificate');
        assert.equal(e.ca.isRevoked(renewed.serial), true, 'the renewed certificate');
        assert.equal(e.ca.isRevoked(bystander.issued.serial), false);
        assert.deepEqual(calls, [[device.issued.deviceId, 'lost']]);
        assert.equal((await e.registry.get(bystander.issued.deviceId)).state, 'registered');
      });

      it('refuses to approve or renew a revoked device with ERR_DEVICE_REVOKED', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const renewal = await signDeviceRequest(
          device.key,
          device.issued.deviceId,
          RENEWAL_REQUEST_TYPE,
          { csr: (await deviceKey()).csr },
          e.clock.now(),
        );
        await e.registry.revoke(device.issued.deviceId, 'stolen');
        await assert.rejects(e.registry.approve(device.issued.deviceId, 'admin'), {
          code: 'ERR_DEVICE_REVOKED',
          status: 403,
        });
        await assert.rejects(e.registry.renew(renewal), { code: 'ERR_DEVICE_REVOKED' });
        assert.equal((await e.registry.get(device.issued.deviceId)).state, 'revoked');
      });

      it('approves a registered device as managed by the admin who approved it', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const record = await e.registry.approve(device.issued.deviceId, 'admin:carol');
        assert.equal(record.state, 'managed');
        assert.equal(record.managedBy, 'admin:carol');
      });

      it('answers ERR_DEVICE_NOT_FOUND for a device it never enrolled', async (t) => {
        const e = await env(t);
        await assert.rejects(e.registry.revoke('d-0000000000000000', 'lost'), {
          code: 'ERR_DEVICE_NOT_FOUND',
          status: 404,
        });
        await assert.rejects(e.registry.approve('d-0000000000000000', 'admin'), {
          code: 'ERR_DEVICE_NOT_FOUND',
        });
      });
    });

    describe('serials', () => {
      it('refuses to enroll a second live device with a serial already enrolled (ERR_DEVICE_SERIAL_IN_USE)', async (t) => {
        const e = await env(t);
        await enroll(e, { serial: 'C02SERIAL' });
        await assert.rejects(enroll(e, { serial: 'C02SERIAL' }), {
          code: 'ERR_DEVICE_SERIAL_IN_USE',
          status: 409,
        });
        const key = await deviceKey();
        await assert.rejects(
          e.registry.startAuthorization({ csr: key.csr, name: 'copy', serial: 'C02SERIAL' }),
          { code: 'ERR_DEVICE_SERIAL_IN_USE' },
        );
      });

      it('lets the serial of a revoked device be enrolled again, and finds the live one by it', async (t) => {
        const e = await env(t);
        const first = await enroll(e, { serial: 'C02SERIAL' });
        await e.registry.revoke(first.issued.deviceId, 'replaced');
        const second = await enroll(e, { serial: 'C02SERIAL' });
        assert.equal((await e.registry.findDevice({ serial: 'C02SERIAL' }))?.id, second.issued.deviceId);
      });
    });

    describe('report times', () => {
      it('stores a report dated ahead of the server clock (within the skew) as received now', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const accepted = await e.registry.acceptReport(
          await report(e, device, { firewall: true }, e.clock.now() + 2 * MINUTE),
        );
        assert.equal(accepted.reportedAt, e.clock.now());
        const [stored] = await e.registry.postureOf(device.issued.deviceId);
        assert.equal(stored?.reportedAt, e.clock.now());
      });
    });

    describe('provider posture', () => {
      it('refuses the same replay id twice with ERR_DEVICE_REPORT_REPLAYED', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const posture = {
          deviceId: device.issued.deviceId,
          source: 'mdm',
          reportedAt: e.clock.now(),
          replayId: 'provider:mdm:abc',
          data: { compliant: true },
        };
        await e.registry.recordPosture(posture);
        await assert.rejects(e.registry.recordPosture({ ...posture, data: { compliant: false } }), {
          code: 'ERR_DEVICE_REPORT_REPLAYED',
          status: 409,
        });
        const [stored] = await e.registry.postureOf(device.issued.deviceId);
        assert.deepEqual(stored?.data, { compliant: true });
      });

      it('keeps the newest report of a source when an older one arrives later', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        const at = e.clock.now();
        const base = { deviceId: device.issued.deviceId, source: 'mdm' };
        await e.registry.recordPosture({
          ...base,
          reportedAt: at,
          replayId: 'r-new',
          data: { compliant: true },
        });
        await e.registry.recordPosture({
          ...base,
          reportedAt: at - MINUTE,
          replayId: 'r-old',
          data: { compliant: false },
        });
        assert.deepEqual(await e.registry.postureOf(device.issued.deviceId), [
          { source: 'mdm', reportedAt: at, data: { compliant: true } },
        ]);
      });

      it('makes a device managed by provider:<name> when a vouching provider says managed', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        await e.registry.recordPosture({
          deviceId: device.issued.deviceId,
          source: 'intune',
          reportedAt: e.clock.now(),
          replayId: 'provider:intune:1',
          data: { managed: true, compliant: true },
          vouchManaged: true,
        });
        const record = await e.registry.get(device.issued.deviceId);
        assert.equal(record.state, 'managed');
        assert.equal(record.managedBy, 'provider:intune');
      });

      it('leaves a device registered when a provider that does not vouch says managed', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        await e.registry.recordPosture({
          deviceId: device.issued.deviceId,
          source: 'crowdstrike',
          reportedAt: e.clock.now(),
          replayId: 'provider:crowdstrike:1',
          data: { managed: true },
          vouchManaged: false,
        });
        assert.equal((await e.registry.get(device.issued.deviceId)).state, 'registered');
      });

      it('does not bring a revoked device back as managed on a vouching provider report', async (t) => {
        const e = await env(t);
        const device = await enroll(e);
        await e.registry.revoke(device.issued.deviceId, 'lost');
        await e.registry.recordPosture({
          deviceId: device.issued.deviceId,
          source: 'intune',
          reportedAt: e.clock.now(),
          replayId: 'provider:intune:2',
          data: { managed: true },
          vouchManaged: true,
        });
        assert.equal((await e.registry.get(device.issued.deviceId)).state, 'revoked');
      });

      it('finds a device by serial, skipping revoked ones', async (t) => {
        const e = await env(t);
        const old = await enroll(e, { serial: 'SN-1' });
        await e.registry.revoke(old.issued.deviceId, 'replaced');
        assert.equal(await e.registry.findDevice({ serial: 'SN-1' }), undefined);
        const current = await enroll(e, { serial: 'SN-1' });
        assert.equal((await e.registry.findDevice({ serial: 'SN-1' }))?.id, current.issued.deviceId);
        assert.equal((await e.registry.findDevice({ id: old.issued.deviceId }))?.state, 'revoked');
        assert.equal(await e.registry.findDevice({}), undefined);
      });
    });
  });
}

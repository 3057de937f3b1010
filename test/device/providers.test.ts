import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  mapProviderPayload,
  type PostureProvider,
  type ProviderFormat,
  postureDataSchema,
  signProviderPayload,
  verifyProviderSignature,
} from '../../src/device/index.ts';

const NOW = Date.UTC(2026, 0, 5, 12, 0, 0);
const SKEW = 300_000;
const T = Math.floor(NOW / 1000);
const BODY = JSON.stringify({ serial: 'SN-1', compliant: true });

const provider = (format: ProviderFormat = 'generic', secret = 'new-secret'): PostureProvider => ({
  name: 'mdm',
  secret,
  format,
  vouchManaged: true,
});

const mac = (secret: string, t: number, body: string) =>
  createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');

const signatureRefused = { code: 'ERR_DEVICE_PROVIDER_SIGNATURE', status: 401 };

describe('provider webhook signature', () => {
  it('accepts a body signed with the provider secret and names a replay id of the provider', () => {
    const header = signProviderPayload('new-secret', BODY, T);
    assert.equal(header, `t=${T},v1=${mac('new-secret', T, BODY)}`);
    const replayId = verifyProviderSignature(provider(), header, BODY, NOW, SKEW);
    assert.match(replayId, /^provider:mdm:[0-9a-f]{32}$/);
  });

  it('refuses a bad MAC, another secret or a changed body with ERR_DEVICE_PROVIDER_SIGNATURE', () => {
    const header = signProviderPayload('new-secret', BODY, T);
    const flipped = header.slice(0, -1) + (header.endsWith('0') ? '1' : '0');
    assert.throws(() => verifyProviderSignature(provider(), flipped, BODY, NOW, SKEW), signatureRefused);
    assert.throws(
      () => verifyProviderSignature(provider(), signProviderPayload('other', BODY, T), BODY, NOW, SKEW),
      signatureRefused,
    );
    assert.throws(() => verifyProviderSignature(provider(), header, `${BODY} `, NOW, SKEW), signatureRefused);
  });

  it('refuses a webhook without the header, without t= or without v1=', () => {
    assert.throws(() => verifyProviderSignature(provider(), undefined, BODY, NOW, SKEW), signatureRefused);
    assert.throws(
      () => verifyProviderSignature(provider(), `v1=${mac('new-secret', T, BODY)}`, BODY, NOW, SKEW),
      signatureRefused,
    );
    assert.throws(() => verifyProviderSignature(provider(), `t=${T}`, BODY, NOW, SKEW), signatureRefused);
    assert.throws(
      () => verifyProviderSignature(provider(), 'x'.repeat(513), BODY, NOW, SKEW),
      signatureRefused,
    );
  });

  it('refuses a webhook signed outside the replay window, either way, and accepts one at its edge', () => {
    const at = (seconds: number) => signProviderPayload('new-secret', BODY, seconds);
    const skewS = SKEW / 1000;
    assert.throws(
      () => verifyProviderSignature(provider(), at(T - skewS - 1), BODY, NOW, SKEW),
      signatureRefused,
    );
    assert.throws(
      () => verifyProviderSignature(provider(), at(T + skewS + 1), BODY, NOW, SKEW),
      signatureRefused,
    );
    assert.doesNotThrow(() => verifyProviderSignature(provider(), at(T - skewS), BODY, NOW, SKEW));
    assert.doesNotThrow(() => verifyProviderSignature(provider(), at(T + skewS), BODY, NOW, SKEW));
  });

  it('returns the same replay id for the same signature, and another for another signature', () => {
    const header = signProviderPayload('new-secret', BODY, T);
    const first = verifyProviderSignature(provider(), header, BODY, NOW, SKEW);
    assert.equal(verifyProviderSignature(provider(), header, BODY, NOW + 1000, SKEW), first);
    const later = signProviderPayload('new-secret', BODY, T + 1);
    assert.notEqual(verifyProviderSignature(provider(), later, BODY, NOW, SKEW), first);
  });

  it('accepts two v1 values during a secret rotation, whichever comes first', () => {
    const oldMac = mac('old-secret', T, BODY);
    const newMac = mac('new-secret', T, BODY);
    const expected = verifyProviderSignature(provider(), `t=${T},v1=${newMac}`, BODY, NOW, SKEW);
    assert.equal(
      verifyProviderSignature(provider(), `t=${T},v1=${oldMac},v1=${newMac}`, BODY, NOW, SKEW),
      expected,
    );
    assert.equal(
      verifyProviderSignature(provider(), `t=${T}, v1=${newMac}, v1=${oldMac}`, BODY, NOW, SKEW),
      expected,
    );
    assert.throws(
      () =>
        verifyProviderSignature(
          provider(),
          `t=${T},v1=${oldMac},v1=${mac('third', T, BODY)}`,
          BODY,
          NOW,
          SKEW,
        ),
      signatureRefused,
    );
  });
});

describe('provider payload mapping', () => {
  const badRequest = (field: RegExp) => ({ code: 'ERR_HTTP_BAD_REQUEST', status: 400, message: field });

  it('maps a generic payload field by field, with Unix seconds and a version with a build suffix', () => {
    const report = mapProviderPayload(provider('generic'), {
      device_id: 'd-0123456789abcdef',
      serial: 'SN-1',
      reported_at: 1_767_614_400,
      managed: true,
      compliant: false,
      os_family: 'macos',
      os_version: '14.4.1 (23E224)',
      disk_encrypted: true,
      firewall: false,
      screen_lock: true,
      edr_running: true,
    });
    assert.deepEqual(report, {
      device: { id: 'd-0123456789abcdef', serial: 'SN-1' },
      reportedAt: 1_767_614_400_000,
      data: {
        managed: true,
        compliant: false,
        osFamily: 'macos',
        osVersion: '14.4.1',
        diskEncrypted: true,
        firewall: false,
        screenLock: true,
        edrRunning: true,
      },
    });
  });

  it('reads an ISO 8601 reported_at and leaves out what the payload does not say', () => {
    const report = mapProviderPayload(provider('generic'), {
      serial: 'SN-1',
      reported_at: '2026-01-05T12:00:00Z',
    });
    assert.deepEqual(report, { device: { serial: 'SN-1' }, reportedAt: NOW, data: {} });
  });

  it('refuses a generic payload that is no object, names no device, has an unknown key or a wrong type', () => {
    const generic = provider('generic');
    assert.throws(() => mapProviderPayload(generic, null), badRequest(/\(body\)/));
    assert.throws(() => mapProviderPayload(generic, [{ serial: 'SN-1' }]), badRequest(/\(body\)/));
    assert.throws(() => mapProviderPayload(generic, { compliant: true }), badRequest(/device_id or serial/));
    assert.throws(() => mapProviderPayload(generic, { serial: 'SN-1', colour: 'red' }), badRequest(/colour/));
    assert.throws(
      () => mapProviderPayload(generic, { serial: 'SN-1', disk_encrypted: 'yes' }),
      badRequest(/disk_encrypted/),
    );
    assert.throws(
      () => mapProviderPayload(generic, { serial: 'SN-1', reported_at: 'yesterday' }),
      badRequest(/reported_at/),
    );
    assert.throws(
      () => mapProviderPayload(generic, { serial: 'SN-1', os_family: 'beos' }),
      badRequest(/os_family/),
    );
  });

  it('maps an Intune managed device: compliance, management state, OS and encryption', () => {
    const report = mapProviderPayload(provider('intune'), {
      id: 'intune-guid',
      serialNumber: 'SN-2',
      operatingSystem: 'Windows',
      osVersion: '10.0.22631.3447',
      complianceState: 'compliant',
      isEncrypted: true,
      managementState: 'managed',
      lastSyncDateTime: '2026-01-05T12:00:00Z',
      deviceName: 'ignored extra field',
    });
    assert.deepEqual(report, {
      device: { serial: 'SN-2' },
      reportedAt: NOW,
      data: {
        managed: true,
        compliant: true,
        osFamily: 'windows',
        osVersion: '10.0.22631.3447',
        diskEncrypted: true,
      },
    });
    const noncompliant = mapProviderPayload(provider('intune'), {
      serialNumber: 'SN-2',
      complianceState: 'noncompliant',
      managementState: 'retirePending',
    });
    assert.deepEqual(noncompliant.data, { managed: false, compliant: false });
  });

  it('refuses an Intune payload without serialNumber or complianceState, naming the field', () => {
    assert.throws(
      () => mapProviderPayload(provider('intune'), { complianceState: 'compliant' }),
      badRequest(/serialNumber/),
    );
    assert.throws(
      () => mapProviderPayload(provider('intune'), { serialNumber: 'SN-2' }),
      badRequest(/complianceState/),
    );
  });

  it('maps a Jamf computer event as a macOS device', () => {
    const report = mapProviderPayload(provider('jamf'), {
      event: {
        computer: {
          serialNumber: 'C02XYZ',
          osVersion: '14.4.1',
          managed: true,
          fileVault2Enabled: true,
          firewallEnabled: false,
          screenLockEnabled: true,
        },
      },
      webhook: { eventTimestamp: 1_767_614_400 },
    });
    assert.deepEqual(report, {
      device: { serial: 'C02XYZ' },
      reportedAt: NOW,
      data: {
        managed: true,
        osFamily: 'macos',
        osVersion: '14.4.1',
        diskEncrypted: true,
        firewall: false,
        screenLock: true,
      },
    });
  });

  it('refuses a Jamf payload without the computer serial, naming its path', () => {
    assert.throws(
      () => mapProviderPayload(provider('jamf'), { event: { computer: { managed: true } } }),
      badRequest(/event\.computer\.serialNumber/),
    );
    assert.throws(() => mapProviderPayload(provider('jamf'), { computer: {} }), badRequest(/event/));
  });

  it('maps a CrowdStrike host as healthy only when its sensor is normal and not in reduced functionality', () => {
    const host = {
      serial_number: 'SN-3',
      platform_name: 'Linux',
      os_version: 'Ubuntu 22.04',
      last_seen: NOW / 1000,
    };
    assert.deepEqual(mapProviderPayload(provider('crowdstrike'), { ...host, status: 'normal' }), {
      device: { serial: 'SN-3' },
      reportedAt: NOW,
      data: { osFamily: 'linux', osVersion: '22.04', edrRunning: true, compliant: true },
    });
    for (const unhealthy of [
      { status: 'contained' },
      { status: 'normal', reduced_functionality_mode: 'yes' },
    ]) {
      const report = mapProviderPayload(provider('crowdstrike'), { ...host, ...unhealthy });
      assert.equal(report.data.edrRunning, false);
      assert.equal(report.data.compliant, false);
    }
  });

  it('refuses a CrowdStrike payload without serial_number or status, naming the field', () => {
    assert.throws(
      () => mapProviderPayload(provider('crowdstrike'), { status: 'normal' }),
      badRequest(/serial_number/),
    );
    assert.throws(
      () => mapProviderPayload(provider('crowdstrike'), { serial_number: 'SN-3' }),
      badRequest(/status/),
    );
  });

  it('maps only OS versions the posture schema stores, dropping one with an over-long component', () => {
    for (const format of ['generic', 'intune', 'crowdstrike'] as const) {
      const body =
        format === 'generic'
          ? { serial: 'SN-1', os_version: 'build 2024010112' }
          : format === 'intune'
            ? { serialNumber: 'SN-1', complianceState: 'compliant', osVersion: '10.0.1234567' }
            : { serial_number: 'SN-1', status: 'normal', os_version: '1234567' };
      const report = mapProviderPayload(provider(format), body);
      assert.equal(report.data.osVersion, undefined, format);
      assert.ok(postureDataSchema.safeParse(report.data).success, format);
    }
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DevicePosture } from '../../src/policy/index.ts';
import { allowIf, NOW } from './helpers.ts';

const mac = (
  posture: Partial<DevicePosture> = {},
  state: 'managed' | 'registered' | 'revoked' = 'managed',
) => ({
  device: {
    id: 'mac-1',
    state,
    posture: {
      osFamily: 'macOS',
      osVersion: '14.4.1',
      diskEncrypted: true,
      firewall: true,
      screenLock: true,
      edrRunning: true,
      reportedAt: NOW - 60_000,
      ...posture,
    },
  },
});

test('device: managed needs a managed device; registered also accepts registered ones', () => {
  const managed = allowIf({ device: 'managed' });
  const registered = allowIf({ device: 'registered' });
  assert.equal(managed(mac()).effect, 'allow');
  assert.deepEqual(managed(mac({}, 'registered')).reasons, ['device-unmanaged']);
  assert.equal(registered(mac({}, 'registered')).effect, 'allow');
  assert.deepEqual(managed({}).reasons, ['device-missing']);
});

test('a revoked device satisfies no device condition except none', () => {
  for (const condition of [
    { device: 'managed' },
    { device: 'registered' },
    { device_id: ['mac-1'] },
    { posture: { disk_encrypted: true } },
  ]) {
    assert.deepEqual(
      allowIf(condition)(mac({}, 'revoked')).reasons,
      ['device-revoked'],
      JSON.stringify(condition),
    );
  }
  assert.equal(allowIf({ device: 'none' })(mac({}, 'revoked')).effect, 'allow');
  assert.equal(allowIf({ device: 'none' })({}).effect, 'allow');
});

test('device_id allows the listed devices only', () => {
  const decide = allowIf({ device_id: ['mac-1'] });
  assert.equal(decide(mac()).effect, 'allow');
  assert.deepEqual(decide({ device: { id: 'other', state: 'managed' } }).reasons, ['device-denied']);
  assert.deepEqual(decide({}).reasons, ['device-missing']);
});

test('posture booleans require the stated value', () => {
  for (const [key, field] of [
    ['disk_encrypted', 'diskEncrypted'],
    ['firewall', 'firewall'],
    ['screen_lock', 'screenLock'],
    ['edr_running', 'edrRunning'],
  ] as const) {
    const decide = allowIf({ posture: { [key]: true } });
    assert.equal(decide(mac()).effect, 'allow', key);
    assert.deepEqual(decide(mac({ [field]: false })).reasons, ['device-posture-failed'], key);
    assert.deepEqual(
      decide(mac({ [field]: undefined })).reasons,
      ['device-posture-failed'],
      `${key} missing`,
    );
  }
});

test('a false posture check is reported even when another field is missing', () => {
  const decide = allowIf({ posture: { disk_encrypted: true, firewall: true } });
  const decision = decide(mac({ diskEncrypted: undefined, firewall: false }));
  assert.deepEqual(decision.reasons, ['device-posture-failed']);
});

test('os family and minimum version are checked per family', () => {
  const decide = allowIf({
    posture: { os_family: ['macos', 'linux'], min_os_version: { macos: '14.0', linux: '6.1' } },
  });
  assert.equal(decide(mac({ osVersion: '14.0' })).effect, 'allow');
  assert.equal(decide(mac({ osVersion: '15' })).effect, 'allow');
  assert.deepEqual(decide(mac({ osVersion: '13.6.9' })).reasons, ['device-posture-failed']);
  assert.equal(decide(mac({ osFamily: 'linux', osVersion: '6.8.0' })).effect, 'allow');
  assert.equal(decide(mac({ osFamily: 'linux', osVersion: '5.15' })).effect, 'deny');
  assert.equal(decide(mac({ osFamily: 'windows', osVersion: '11' })).effect, 'deny');
  assert.equal(decide(mac({ osVersion: 'beta' })).effect, 'deny');
  assert.equal(decide(mac({ osVersion: undefined })).effect, 'deny');
});

test('a minimum version for another family fails closed', () => {
  const decide = allowIf({ posture: { min_os_version: { macos: '14.0' } } });
  assert.deepEqual(decide(mac({ osFamily: 'windows', osVersion: '11' })).reasons, ['device-posture-failed']);
});

test('a posture report older than max_age is stale', () => {
  const decide = allowIf({ posture: { disk_encrypted: true, max_age: '1h' } });
  assert.equal(decide(mac({ reportedAt: NOW - 3_600_000 })).effect, 'allow');
  assert.deepEqual(decide(mac({ reportedAt: NOW - 3_600_001 })).reasons, ['posture-stale']);
});

test('no device or no posture report never matches a posture condition', () => {
  const decide = allowIf({ posture: { disk_encrypted: true } });
  assert.deepEqual(decide({}).reasons, ['device-missing']);
  assert.deepEqual(decide({ device: { id: 'd', state: 'managed' } }).reasons, ['device-posture-failed']);
});

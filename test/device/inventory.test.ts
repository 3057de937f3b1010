import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { DeviceInventory, POSTURE_REPORT_TYPE, signDeviceRequest } from '../../src/device/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { freshPostgresUrl, STORE_TARGETS } from '../support/databases.ts';
import {
  type DeviceEnv,
  deviceEnv,
  deviceKey,
  type EnrolledTestDevice,
  enroll,
  eventually,
} from './helpers.ts';

async function openInventory(t: TestContext, store: Store): Promise<DeviceInventory> {
  const inventory = await DeviceInventory.open(store);
  t.after(() => inventory.close());
  return inventory;
}

async function agentReport(env: DeviceEnv, device: EnrolledTestDevice, posture: Record<string, unknown>) {
  const jws = await signDeviceRequest(
    device.key,
    device.issued.deviceId,
    POSTURE_REPORT_TYPE,
    { posture },
    env.clock.now(),
  );
  return env.registry.acceptReport(jws);
}

for (const target of STORE_TARGETS) {
  describe(`device inventory on ${target.name}`, () => {
    it('loads the devices already in the store when it opens, and nothing for an unknown id', async (t) => {
      const e = await deviceEnv(t, { url: target.freshUrl() });
      const device = await enroll(e, { managed: true });
      const inventory = await openInventory(t, e.store);
      assert.equal(inventory.size, 1);
      assert.deepEqual(inventory.get(device.issued.deviceId), {
        id: device.issued.deviceId,
        state: 'managed',
      });
      assert.equal(inventory.get('d-0000000000000000'), undefined);
    });

    it('follows enrollment, posture reports and revocation through the change feed', async (t) => {
      const e = await deviceEnv(t, { url: target.freshUrl() });
      const inventory = await openInventory(t, e.store);
      const device = await enroll(e);
      const id = device.issued.deviceId;
      await eventually(() => inventory.get(id)?.state === 'registered', 'the enrolled device');

      const accepted = await agentReport(e, device, {
        osFamily: 'linux',
        osVersion: '6.8',
        diskEncrypted: true,
      });
      await e.registry.recordPosture({
        deviceId: id,
        source: 'mdm',
        reportedAt: accepted.reportedAt - 60_000,
        replayId: 'provider:mdm:1',
        data: { diskEncrypted: false, compliant: true },
      });
      await eventually(() => inventory.get(id)?.posture?.compliant === true, 'the merged posture');
      assert.deepEqual(inventory.get(id), {
        id,
        state: 'registered',
        posture: {
          // The oldest source's age: the MDM's silence is not hidden by the agent.
          reportedAt: accepted.reportedAt - 60_000,
          osFamily: 'linux',
          osVersion: '6.8',
          diskEncrypted: false,
          compliant: true,
        },
      });

      await e.registry.approve(id, 'admin');
      await eventually(() => inventory.get(id)?.state === 'managed', 'the approval');
      await e.registry.revoke(id, 'lost');
      await eventually(() => inventory.get(id)?.state === 'revoked', 'the revocation');
      assert.equal(
        inventory.get(id)?.posture?.osFamily,
        'linux',
        'the posture stays with the revoked device',
      );
    });

    it('gives a device enrolled by a user only to that user; a token-enrolled device to anyone', async (t) => {
      const e = await deviceEnv(t, { url: target.freshUrl() });
      const shared = await enroll(e);
      const { deviceCode, userCode } = await e.registry.startAuthorization({
        csr: (await deviceKey()).csr,
        name: 'alice-laptop',
      });
      assert.equal(await e.registry.decideAuthorization(userCode, 'dev:alice', true), true);
      const polled = await e.registry.pollAuthorization(deviceCode);
      assert.equal(polled.status, 'issued');
      const owned = polled.status === 'issued' ? polled.device.deviceId : '';
      const inventory = await openInventory(t, e.store);
      assert.equal(inventory.getFor(owned, 'dev:alice')?.id, owned);
      assert.equal(inventory.getFor(owned, 'dev:mallory'), undefined, "another user's device");
      assert.equal(inventory.getFor(shared.issued.deviceId, 'dev:mallory')?.id, shared.issued.deviceId);
      assert.equal(inventory.getFor('d-none', 'dev:alice'), undefined);
    });

    it('hands out frozen views that a caller cannot change', async (t) => {
      const e = await deviceEnv(t, { url: target.freshUrl() });
      const device = await enroll(e);
      await agentReport(e, device, { firewall: true });
      const inventory = await openInventory(t, e.store);
      const view = inventory.get(device.issued.deviceId);
      assert.ok(view && Object.isFrozen(view) && Object.isFrozen(view.posture));
      assert.throws(() => {
        (view as { state: string }).state = 'managed';
      }, TypeError);
    });

    it('stops following the change feed once closed', async (t) => {
      const e = await deviceEnv(t, { url: target.freshUrl() });
      const inventory = await DeviceInventory.open(e.store);
      const watched = await openInventory(t, e.store);
      inventory.close();
      const device = await enroll(e);
      await eventually(() => watched.get(device.issued.deviceId) !== undefined, 'the open inventory');
      assert.equal(inventory.get(device.issued.deviceId), undefined);
    });
  });
}

describe('device inventory across PostgreSQL connections', () => {
  it('sees a change made through another store connection within 2 s (LISTEN/NOTIFY)', async (t) => {
    const url = freshPostgresUrl();
    const e = await deviceEnv(t, { url });
    const other = await openStore(url);
    t.after(() => other.close());
    const inventory = await openInventory(t, other);
    assert.equal(inventory.size, 0);

    const device = await enroll(e);
    const id = device.issued.deviceId;
    await eventually(
      () => inventory.get(id)?.state === 'registered',
      'the enrollment on the other connection',
    );
    await agentReport(e, device, { firewall: false });
    await eventually(
      () => inventory.get(id)?.posture?.firewall === false,
      'the report on the other connection',
    );
    await e.registry.revoke(id, 'stolen');
    await eventually(() => inventory.get(id)?.state === 'revoked', 'the revocation on the other connection');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergePosture, type SourcedPosture } from '../../src/device/index.ts';

const T = Date.UTC(2026, 0, 5, 12, 0, 0);

describe('mergePosture', () => {
  it('merges nothing into undefined', () => {
    assert.equal(mergePosture([]), undefined);
  });

  it('takes a single report as it is, without the fields policy does not read', () => {
    assert.deepEqual(
      mergePosture([
        {
          source: 'agent',
          reportedAt: T,
          data: { osFamily: 'linux', osVersion: '6.8', firewall: true, hostname: 'box', managed: true },
        },
      ]),
      { reportedAt: T, osFamily: 'linux', osVersion: '6.8', firewall: true },
    );
  });

  it('lets a false of any source win over a true of another, in either order', () => {
    const agent: SourcedPosture = {
      source: 'agent',
      reportedAt: T,
      data: { diskEncrypted: true, firewall: false, compliant: true },
    };
    const mdm: SourcedPosture = {
      source: 'mdm',
      reportedAt: T - 1000,
      data: { diskEncrypted: false, firewall: true, edrRunning: true },
    };
    const expected = {
      reportedAt: T,
      diskEncrypted: false,
      firewall: false,
      compliant: true,
      edrRunning: true,
    };
    assert.deepEqual(mergePosture([agent, mdm]), expected);
    assert.deepEqual(mergePosture([mdm, agent]), expected);
  });

  it('takes the OS from the newest report that names one, and the age of the newest report', () => {
    const merged = mergePosture([
      { source: 'mdm', reportedAt: T - 60_000, data: { osFamily: 'macos', osVersion: '13.6' } },
      { source: 'agent', reportedAt: T - 1000, data: { osFamily: 'macos', osVersion: '14.4.1' } },
      { source: 'edr', reportedAt: T, data: { edrRunning: true } },
    ]);
    assert.deepEqual(merged, { reportedAt: T, osFamily: 'macos', osVersion: '14.4.1', edrRunning: true });
  });

  it('leaves a boolean out when no source says anything about it', () => {
    const merged = mergePosture([{ source: 'agent', reportedAt: T, data: { screenLock: true } }]);
    assert.deepEqual(merged, { reportedAt: T, screenLock: true });
    assert.equal(merged !== undefined && 'diskEncrypted' in merged, false);
  });
});

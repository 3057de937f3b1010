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
      reportedAt: T - 1000,
      diskEncrypted: false,
      firewall: false,
      compliant: true,
      edrRunning: true,
    };
    assert.deepEqual(mergePosture([agent, mdm]), expected);
    assert.deepEqual(mergePosture([mdm, agent]), expected);
  });

  it("takes the family of the newest report, the lowest version any source gives, and the oldest source's age", () => {
    const merged = mergePosture([
      { source: 'mdm', reportedAt: T - 60_000, data: { osFamily: 'macos', osVersion: '13.6' } },
      { source: 'agent', reportedAt: T - 1000, data: { osFamily: 'macos', osVersion: '14.4.1' } },
      { source: 'edr', reportedAt: T, data: { edrRunning: true } },
    ]);
    // The agent cannot talk the version up past what the MDM saw; the MDM's silence ages it all.
    assert.deepEqual(merged, {
      reportedAt: T - 60_000,
      osFamily: 'macos',
      osVersion: '13.6',
      edrRunning: true,
    });
  });

  it('ignores versions of another OS family than the newest report names', () => {
    const merged = mergePosture([
      { source: 'old', reportedAt: T - 5000, data: { osFamily: 'linux', osVersion: '5.10' } },
      { source: 'agent', reportedAt: T, data: { osFamily: 'macos', osVersion: '14.4' } },
    ]);
    assert.equal(merged?.osFamily, 'macos');
    assert.equal(merged?.osVersion, '14.4');
  });

  it('leaves a boolean out when no source says anything about it', () => {
    const merged = mergePosture([{ source: 'agent', reportedAt: T, data: { screenLock: true } }]);
    assert.deepEqual(merged, { reportedAt: T, screenLock: true });
    assert.equal(merged !== undefined && 'diskEncrypted' in merged, false);
  });
});

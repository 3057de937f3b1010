import { parseDuration } from '../../internal/duration.ts';
import { bit, UNKNOWN } from '../reasons.ts';
import type { PostureSpec } from '../schema.ts';
import type { DevicePosture } from '../types.ts';
import { type Leaf, memberOf } from './leaf.ts';

const MISSING = bit('device-missing') | UNKNOWN;
const UNMANAGED = bit('device-unmanaged');
const REVOKED = bit('device-revoked');
const DENIED = bit('device-denied');
const POSTURE_FAILED = bit('device-posture-failed');
const POSTURE_UNKNOWN = POSTURE_FAILED | UNKNOWN;
const POSTURE_STALE = bit('posture-stale');

/**
 * `device: none | registered | managed` is the least device trust a request needs:
 * `none` holds for every request, `registered` for a registered or managed device,
 * `managed` for a managed one. A revoked device never satisfies `registered` or `managed`.
 */
export function deviceLevel(level: 'none' | 'registered' | 'managed'): Leaf {
  if (level === 'none') return { reasons: 0, evaluate: () => 0 };
  const needManaged = level === 'managed';
  return {
    reasons: MISSING | UNMANAGED | REVOKED,
    evaluate: (input) => {
      const device = input.device;
      if (device === undefined) return MISSING;
      const state = device.state;
      if (state === 'managed') return 0;
      if (state === 'registered') return needManaged ? UNMANAGED : 0;
      return REVOKED;
    },
  };
}

export function deviceId(ids: readonly string[]): Leaf {
  const members = memberOf(ids);
  return {
    reasons: MISSING | REVOKED | DENIED,
    evaluate: (input) => {
      const device = input.device;
      if (device === undefined) return MISSING;
      if (device.state === 'revoked') return REVOKED;
      return members.has(device.id) ? 0 : DENIED;
    },
  };
}

/** Compares dotted numeric versions ("14.2.1" >= "14.0"); undefined when not numeric. */
export function compareVersions(actual: string, minimum: string): number | undefined {
  const have = actual.split('.');
  const want = minimum.split('.');
  const length = Math.max(have.length, want.length);
  for (let index = 0; index < length; index++) {
    const a = have[index] === undefined ? 0 : Number(have[index]);
    const b = want[index] === undefined ? 0 : Number(want[index]);
    if (!Number.isInteger(a) || !Number.isInteger(b)) return undefined;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

type BooleanField = 'diskEncrypted' | 'firewall' | 'screenLock' | 'edrRunning' | 'compliant';

/**
 * Every check in one `posture` block has to hold. A check on a field the report lacks is
 * unknown; a false check wins over an unknown one, so the reported reason is the real
 * failure when there is one.
 */
export function posture(spec: PostureSpec): Leaf {
  const booleans: [BooleanField, boolean][] = [];
  if (spec.disk_encrypted !== undefined) booleans.push(['diskEncrypted', spec.disk_encrypted]);
  if (spec.firewall !== undefined) booleans.push(['firewall', spec.firewall]);
  if (spec.screen_lock !== undefined) booleans.push(['screenLock', spec.screen_lock]);
  if (spec.edr_running !== undefined) booleans.push(['edrRunning', spec.edr_running]);
  if (spec.compliant !== undefined) booleans.push(['compliant', spec.compliant]);
  const maxAge = spec.max_age === undefined ? undefined : (parseDuration(spec.max_age) as number);
  const families = spec.os_family === undefined ? undefined : memberOf(spec.os_family);
  const minimums =
    spec.min_os_version === undefined ? undefined : new Map(Object.entries(spec.min_os_version));

  const checkOs = (report: DevicePosture): number => {
    const family = report.osFamily?.toLowerCase();
    if (family === undefined) return POSTURE_UNKNOWN;
    if (families !== undefined && !families.has(family)) return POSTURE_FAILED;
    if (minimums === undefined) return 0;
    // A family with no minimum listed fails: the policy did not say it is acceptable.
    const minimum = minimums.get(family);
    if (minimum === undefined) return POSTURE_FAILED;
    if (report.osVersion === undefined) return POSTURE_UNKNOWN;
    const order = compareVersions(report.osVersion, minimum);
    return order !== undefined && order >= 0 ? 0 : POSTURE_FAILED;
  };
  const checksOs = families !== undefined || minimums !== undefined;

  if (booleans.length === 1 && !checksOs) {
    // The common shape ("disk_encrypted: true", maybe with max_age) without the loop.
    const [field, wanted] = booleans[0] as [BooleanField, boolean];
    return {
      reasons: MISSING | REVOKED | POSTURE_UNKNOWN | POSTURE_STALE,
      evaluate: (input) => {
        const device = input.device;
        if (device === undefined) return MISSING;
        if (device.state === 'revoked') return REVOKED;
        const report = device.posture;
        if (report === undefined) return POSTURE_UNKNOWN;
        if (maxAge !== undefined && input.now - report.reportedAt > maxAge) return POSTURE_STALE;
        const value = report[field];
        if (value === undefined) return POSTURE_UNKNOWN;
        return value === wanted ? 0 : POSTURE_FAILED;
      },
    };
  }

  return {
    reasons: MISSING | REVOKED | POSTURE_UNKNOWN | POSTURE_STALE,
    evaluate: (input) => {
      const device = input.device;
      if (device === undefined) return MISSING;
      if (device.state === 'revoked') return REVOKED;
      const report = device.posture;
      if (report === undefined) return POSTURE_UNKNOWN;
      if (maxAge !== undefined && input.now - report.reportedAt > maxAge) return POSTURE_STALE;
      let unknown = 0;
      for (let index = 0; index < booleans.length; index++) {
        const check = booleans[index] as [BooleanField, boolean];
        const value = report[check[0]];
        if (value === undefined) unknown = POSTURE_UNKNOWN;
        else if (value !== check[1]) return POSTURE_FAILED;
      }
      if (checksOs) {
        const os = checkOs(report);
        if (os === POSTURE_FAILED) return os;
        if (os !== 0) unknown = os;
      }
      return unknown;
    },
  };
}

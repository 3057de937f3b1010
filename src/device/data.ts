import { z } from 'zod';
import { compareVersions, type DevicePosture } from '../policy/index.ts';
import { POSTURE_FIELDS } from './posture/collect.ts';

/** Fields a posture report or provider may set: what the agent checks, and a provider's verdict. */
const FIELDS = [...POSTURE_FIELDS, 'compliant'] as const;

const check = z.strictObject({
  field: z.enum(FIELDS),
  value: z.union([z.string().max(128), z.boolean()]).optional(),
  evidence: z.string().max(512),
});

/** What one source (the agent, a provider) said about a device, as stored and merged. */
export const postureDataSchema = z.strictObject({
  osFamily: z.enum(['linux', 'macos', 'windows']).optional(),
  osVersion: z
    .string()
    .regex(/^\d{1,6}(\.\d{1,6}){0,5}$/, 'must be a dotted numeric version')
    .optional(),
  osName: z.string().max(128).optional(),
  hostname: z.string().max(255).optional(),
  serial: z.string().max(128).optional(),
  diskEncrypted: z.boolean().optional(),
  firewall: z.boolean().optional(),
  screenLock: z.boolean().optional(),
  edrRunning: z.boolean().optional(),
  compliant: z.boolean().optional(),
  /** A provider's word that it manages the device (MDM enrollment). */
  managed: z.boolean().optional(),
  checks: z.array(check).max(32).optional(),
});

export type PostureData = z.infer<typeof postureDataSchema>;

/** The latest report of one source for one device. */
export interface SourcedPosture {
  source: string;
  reportedAt: number;
  data: PostureData;
}

const BOOLEAN_FIELDS = ['diskEncrypted', 'firewall', 'screenLock', 'edrRunning', 'compliant'] as const;

/**
 * One posture from the latest report of every source, the cautious word winning where
 * they differ (the agent may not see what the MDM sees, and a device may lie about
 * itself): a boolean is false when any source says false, true when some source says true
 * and none false; the OS family is the newest report's, its version the lowest any source
 * gives for that family; the age is that of the oldest source, so a provider that stopped
 * reporting makes the posture stale instead of being kept fresh by the agent.
 */
export function mergePosture(reports: readonly SourcedPosture[]): DevicePosture | undefined {
  if (reports.length === 0) return undefined;
  const newestFirst = [...reports].sort((a, b) => b.reportedAt - a.reportedAt);
  const merged: DevicePosture = { reportedAt: (newestFirst.at(-1) as SourcedPosture).reportedAt };
  const family = newestFirst.find((report) => report.data.osFamily !== undefined)?.data.osFamily;
  if (family !== undefined) {
    merged.osFamily = family;
    for (const report of reports) {
      const version = report.data.osVersion;
      if (report.data.osFamily !== family || version === undefined) continue;
      if (merged.osVersion === undefined || (compareVersions(version, merged.osVersion) ?? 0) < 0)
        merged.osVersion = version;
    }
  }
  for (const field of BOOLEAN_FIELDS) {
    let value: boolean | undefined;
    for (const report of reports) {
      const said = report.data[field];
      if (said === false) value = false;
      else if (said === true && value === undefined) value = true;
    }
    if (value !== undefined) merged[field] = value;
  }
  return merged;
}

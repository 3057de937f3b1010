import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { VigilError } from '../errors.ts';
import { constantTimeEqual } from '../internal/secrets.ts';
import type { PostureData } from './data.ts';

export type ProviderFormat = 'generic' | 'intune' | 'jamf' | 'crowdstrike';

/** A posture provider as configured: `devices.providers[]`. */
export interface PostureProvider {
  name: string;
  secret: string;
  format: ProviderFormat;
  vouchManaged: boolean;
}

/** Header a provider signs its webhook with: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const PROVIDER_SIGNATURE_HEADER = 'x-vigil-signature';
/** Webhook bodies above this are refused unread. */
export const MAX_PROVIDER_BODY_BYTES = 64 * 1024;

/** What a provider said, mapped onto Vigil's posture fields. */
export interface ProviderReport {
  device: { id?: string; serial?: string };
  reportedAt: number | undefined;
  data: PostureData;
}

function unauthorized(message: string): VigilError {
  return new VigilError('ERR_DEVICE_PROVIDER_SIGNATURE', message, {
    status: 401,
    publicMessage: 'bad or missing X-Vigil-Signature',
  });
}

/**
 * Signs a webhook body the way providers must: HMAC-SHA256 over `<t>.<body>`
 * (what a provider's integration, or a test, computes).
 */
export function signProviderPayload(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * Checks a webhook's signature and freshness; returns the id that makes it single-use
 * (a replay within the window carries the same signature, so the same id).
 */
export function verifyProviderSignature(
  provider: PostureProvider,
  header: string | undefined,
  body: string,
  nowMs: number,
  maxSkewMs: number,
): string {
  if (header === undefined || header.length > 512) throw unauthorized('webhook without X-Vigil-Signature');
  const parts = new Map<string, string[]>();
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === undefined || value === undefined) continue;
    parts.set(key, [...(parts.get(key) ?? []), value]);
  }
  const timestamp = parts.get('t')?.[0];
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) throw unauthorized('signature without t=');
  const signedAt = Number(timestamp) * 1000;
  if (Math.abs(nowMs - signedAt) > maxSkewMs)
    throw unauthorized(`webhook signed at ${new Date(signedAt).toISOString()}, outside the replay window`);
  const expected = createHmac('sha256', provider.secret).update(`${timestamp}.${body}`).digest('hex');
  // Several v1 values allow a provider to sign with the old and new secret during rotation.
  const match = (parts.get('v1') ?? []).find((candidate) => constantTimeEqual(candidate, expected));
  if (match === undefined) throw unauthorized(`webhook of ${provider.name} with a bad signature`);
  return `provider:${provider.name}:${createHash('sha256').update(match).digest('hex').slice(0, 32)}`;
}

const when = z.union([
  z.number().int().nonnegative(),
  z.string().refine((text) => Number.isFinite(Date.parse(text)), 'must be an ISO 8601 time'),
]);

function epochMs(value: number | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  // Numbers are Unix seconds, as webhook senders usually write them.
  return typeof value === 'number' ? value * 1000 : Date.parse(value);
}

const shortText = z.string().min(1).max(128);
const version = z.string().max(64);

function osFamily(name: string | undefined): PostureData['osFamily'] {
  const lower = name?.toLowerCase() ?? '';
  if (lower.startsWith('mac') || lower === 'darwin' || lower === 'osx') return 'macos';
  if (lower.startsWith('linux') || lower === 'ubuntu' || lower === 'debian') return 'linux';
  if (lower.startsWith('windows') || lower === 'win') return 'windows';
  return undefined;
}

/** Keeps a dotted numeric version ("14.4.1 (23E224)" → "14.4.1"); drops what is not one. */
function numericVersion(text: string | undefined): string | undefined {
  const found = text === undefined ? undefined : /\d+(?:\.\d+){0,5}/.exec(text)?.[0];
  // Only what postureDataSchema stores: a value it refuses would be written unchecked,
  // then break `vigil device show` and vanish from the inventory.
  return found !== undefined && /^\d{1,6}(?:\.\d{1,6}){0,5}$/.test(found) ? found : undefined;
}

function withoutUndefined(data: Record<string, unknown>): PostureData {
  return Object.fromEntries(Object.entries(data).filter(([, value]) => value !== undefined)) as PostureData;
}

const generic = z.strictObject({
  device_id: shortText.optional(),
  serial: shortText.optional(),
  reported_at: when.optional(),
  managed: z.boolean().optional(),
  compliant: z.boolean().optional(),
  os_family: z.enum(['linux', 'macos', 'windows']).optional(),
  os_version: version.optional(),
  disk_encrypted: z.boolean().optional(),
  firewall: z.boolean().optional(),
  screen_lock: z.boolean().optional(),
  edr_running: z.boolean().optional(),
});

/** Microsoft Intune managedDevice (Graph) fields. */
const intune = z.looseObject({
  id: shortText.optional(),
  serialNumber: shortText.optional(),
  operatingSystem: z.string().max(64).optional(),
  osVersion: version.optional(),
  complianceState: z.string().max(32),
  isEncrypted: z.boolean().optional(),
  managementState: z.string().max(32).optional(),
  lastSyncDateTime: when.optional(),
});

/** Jamf Pro computer inventory webhook fields. */
const jamf = z.looseObject({
  event: z.looseObject({
    computer: z.looseObject({
      serialNumber: shortText,
      osVersion: version.optional(),
      managed: z.boolean().optional(),
      fileVault2Enabled: z.boolean().optional(),
      firewallEnabled: z.boolean().optional(),
      screenLockEnabled: z.boolean().optional(),
    }),
  }),
  webhook: z.looseObject({ eventTimestamp: when.optional() }).optional(),
});

/** CrowdStrike Falcon host details. */
const crowdstrike = z.looseObject({
  serial_number: shortText,
  platform_name: z.string().max(32).optional(),
  os_version: version.optional(),
  status: z.string().max(32),
  reduced_functionality_mode: z.string().max(16).optional(),
  last_seen: when.optional(),
});

function invalidPayload(provider: PostureProvider, error: z.ZodError): VigilError {
  const issue = error.issues[0];
  const where = issue?.path.join('.') || '(body)';
  const message = `${provider.format} payload of ${provider.name}: ${where}: ${issue?.message ?? 'invalid'}`;
  return new VigilError('ERR_HTTP_BAD_REQUEST', message, { status: 400, publicMessage: message });
}

/** Maps a provider's payload, in its format, onto Vigil's posture fields. */
export function mapProviderPayload(provider: PostureProvider, body: unknown): ProviderReport {
  switch (provider.format) {
    case 'generic': {
      const parsed = generic.safeParse(body);
      if (!parsed.success) throw invalidPayload(provider, parsed.error);
      const input = parsed.data;
      if (input.device_id === undefined && input.serial === undefined)
        throw invalidPayload(
          provider,
          new z.ZodError([
            { code: 'custom', path: ['device_id'], message: 'device_id or serial is required', input },
          ]),
        );
      return {
        device: {
          ...(input.device_id ? { id: input.device_id } : {}),
          ...(input.serial ? { serial: input.serial } : {}),
        },
        reportedAt: epochMs(input.reported_at),
        data: withoutUndefined({
          managed: input.managed,
          compliant: input.compliant,
          osFamily: input.os_family,
          osVersion: numericVersion(input.os_version),
          diskEncrypted: input.disk_encrypted,
          firewall: input.firewall,
          screenLock: input.screen_lock,
          edrRunning: input.edr_running,
        }),
      };
    }
    case 'intune': {
      const parsed = intune.safeParse(body);
      if (!parsed.success) throw invalidPayload(provider, parsed.error);
      const input = parsed.data;
      if (input.serialNumber === undefined)
        throw invalidPayload(
          provider,
          new z.ZodError([{ code: 'custom', path: ['serialNumber'], message: 'required', input }]),
        );
      return {
        device: { serial: input.serialNumber },
        reportedAt: epochMs(input.lastSyncDateTime),
        data: withoutUndefined({
          managed: input.managementState === undefined ? undefined : input.managementState === 'managed',
          compliant: input.complianceState === 'compliant',
          osFamily: osFamily(input.operatingSystem),
          osVersion: numericVersion(input.osVersion),
          diskEncrypted: input.isEncrypted,
        }),
      };
    }
    case 'jamf': {
      const parsed = jamf.safeParse(body);
      if (!parsed.success) throw invalidPayload(provider, parsed.error);
      const computer = parsed.data.event.computer;
      return {
        device: { serial: computer.serialNumber },
        reportedAt: epochMs(parsed.data.webhook?.eventTimestamp),
        data: withoutUndefined({
          managed: computer.managed,
          osFamily: 'macos',
          osVersion: numericVersion(computer.osVersion),
          diskEncrypted: computer.fileVault2Enabled,
          firewall: computer.firewallEnabled,
          screenLock: computer.screenLockEnabled,
        }),
      };
    }
    case 'crowdstrike': {
      const parsed = crowdstrike.safeParse(body);
      if (!parsed.success) throw invalidPayload(provider, parsed.error);
      const input = parsed.data;
      // "normal" is a healthy sensor; "contained" (network isolated) and the rest are not.
      const healthy = input.status === 'normal' && input.reduced_functionality_mode !== 'yes';
      return {
        device: { serial: input.serial_number },
        reportedAt: epochMs(input.last_seen),
        data: withoutUndefined({
          osFamily: osFamily(input.platform_name),
          osVersion: numericVersion(input.os_version),
          edrRunning: healthy,
          compliant: healthy,
        }),
      };
    }
  }
}

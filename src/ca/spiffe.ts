import { VigilError } from '../errors.ts';

/** Trust domain names: lowercase DNS-like labels, as the SPIFFE ID spec allows. */
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$/;
/** Path segments: the SPIFFE ID spec's character set, no `.`/`..` segments. */
const PATH_SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;
/** Device ids stay short enough to be a certificate's common name too. */
const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_SPIFFE_ID_LENGTH = 2048;

export interface SpiffeId {
  trustDomain: string;
  /** Path with its leading slash, e.g. `/device/d-123`. */
  path: string;
}

/** True when `name` can be a trust domain. */
export function isTrustDomain(name: string): boolean {
  return TRUST_DOMAIN.test(name);
}

/** Parses `spiffe://trust-domain/path`; undefined for anything the spec does not allow. */
export function parseSpiffeId(text: string): SpiffeId | undefined {
  if (text.length > MAX_SPIFFE_ID_LENGTH || !text.startsWith('spiffe://')) return undefined;
  const rest = text.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  const path = rest.slice(slash);
  if (!TRUST_DOMAIN.test(trustDomain)) return undefined;
  const segments = path.slice(1).split('/');
  if (segments.some((segment) => !PATH_SEGMENT.test(segment) || segment === '.' || segment === '..')) {
    return undefined;
  }
  return { trustDomain, path };
}

/** `spiffe://<trust-domain>/device/<id>`: the only URI a device certificate carries. */
export function deviceSpiffeId(trustDomain: string, deviceId: string): string {
  if (!DEVICE_ID.test(deviceId) || deviceId === '.' || deviceId === '..') {
    throw new VigilError(
      'ERR_CA_SPIFFE_ID_INVALID',
      `device id "${deviceId.slice(0, 80)}" is not 1-64 of A-Z a-z 0-9 . _ -`,
      {
        status: 400,
        publicMessage: 'invalid device id',
      },
    );
  }
  return `spiffe://${trustDomain}/device/${deviceId}`;
}

/**
 * Checks a workload's SPIFFE ID: in this CA's trust domain and outside the `/device/`
 * namespace, so that a workload certificate can never pass for a device.
 */
export function checkWorkloadSpiffeId(trustDomain: string, spiffeId: string): SpiffeId {
  const parsed = parseSpiffeId(spiffeId);
  const problem =
    parsed === undefined
      ? 'is not a valid SPIFFE ID'
      : parsed.trustDomain !== trustDomain
        ? `is not in trust domain ${trustDomain}`
        : parsed.path.startsWith('/device/') || parsed.path === '/device'
          ? 'is in the device namespace'
          : undefined;
  if (problem !== undefined || parsed === undefined) {
    throw new VigilError(
      'ERR_CA_SPIFFE_ID_INVALID',
      `workload SPIFFE ID "${spiffeId.slice(0, 200)}" ${problem}`,
      {
        status: 400,
        publicMessage: 'invalid workload SPIFFE ID',
      },
    );
  }
  return parsed;
}

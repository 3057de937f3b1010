import { type KeyObject, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { VigilError } from '../errors.ts';
import { type PostureData, postureDataSchema } from './data.ts';

/** `typ` of a signed posture report; another JWT (an ID token, a renewal) is never taken for one. */
export const POSTURE_REPORT_TYPE = 'vigil-posture+jwt';
/** `typ` of a signed certificate renewal request. */
export const RENEWAL_REQUEST_TYPE = 'vigil-renewal+jwt';
/** Signed device requests above this are refused before parsing. */
export const MAX_SIGNED_REQUEST_BYTES = 64 * 1024;

const DEVICE_ALGORITHMS = ['ES256', 'EdDSA'] as const;
type DeviceAlgorithm = (typeof DEVICE_ALGORITHMS)[number];

/** The JWS algorithm a device key signs with (P-256 → ES256, Ed25519 → EdDSA). */
export function algorithmOf(key: KeyObject): DeviceAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new TypeError(`device keys are P-256 or Ed25519, not ${key.asymmetricKeyType}`);
}

/** Signs a request of the device with its key: `kid` names the device, `jti` makes it single-use. */
export function signDeviceRequest(
  key: KeyObject,
  deviceId: string,
  type: typeof POSTURE_REPORT_TYPE | typeof RENEWAL_REQUEST_TYPE,
  payload: Record<string, unknown>,
  nowMs: number,
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: algorithmOf(key), typ: type, kid: deviceId })
    .setSubject(deviceId)
    .setIssuedAt(Math.floor(nowMs / 1000))
    .setJti(randomUUID())
    .sign(key);
}

export interface SignedRequestCheck {
  /** The device's current certificate public key, or undefined for an unknown device. */
  keyOf(deviceId: string): Promise<KeyObject | undefined>;
  nowMs: number;
  maxSkewMs: number;
}

export interface VerifiedDeviceRequest {
  deviceId: string;
  jti: string;
  issuedAt: number;
  payload: Record<string, unknown>;
}

function invalid(message: string, status = 400, cause?: unknown): VigilError {
  return new VigilError('ERR_DEVICE_REPORT_INVALID', message, { status, publicMessage: message, cause });
}

const claims = z.object({
  sub: z.string().min(1).max(64),
  jti: z.string().min(8).max(128),
  iat: z.number().int(),
});

/**
 * Verifies a signed device request: the header's `kid` picks the device, its current
 * certificate's key must have signed it, `typ` must match, and `iat` must be within the
 * allowed skew. Replay (same `jti`) is the caller's check, against the store.
 */
export async function verifyDeviceRequest(
  jws: string,
  type: typeof POSTURE_REPORT_TYPE | typeof RENEWAL_REQUEST_TYPE,
  check: SignedRequestCheck,
): Promise<VerifiedDeviceRequest> {
  if (jws.length > MAX_SIGNED_REQUEST_BYTES) throw invalid('signed request too large', 413);
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch (error) {
    throw invalid('not a compact JWS', 400, error);
  }
  if (header.typ !== type) throw invalid(`expected typ ${type}`);
  const alg = header.alg;
  if (alg === undefined || !(DEVICE_ALGORITHMS as readonly string[]).includes(alg))
    throw invalid('algorithm not allowed (ES256 or EdDSA)');
  if (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 64)
    throw invalid('kid must name the device');
  const key = await check.keyOf(header.kid);
  if (key === undefined)
    throw new VigilError('ERR_DEVICE_NOT_FOUND', 'signed request of an unknown device', {
      status: 404,
      publicMessage: 'unknown device',
    });
  if (algorithmOf(key) !== alg) throw invalid('algorithm does not match the device key', 401);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(jws, key, {
      algorithms: [alg],
      typ: type,
      subject: header.kid,
      currentDate: new Date(check.nowMs),
      clockTolerance: Math.ceil(check.maxSkewMs / 1000),
    }));
  } catch (error) {
    if (error instanceof joseErrors.JWSSignatureVerificationFailed)
      throw invalid('signature does not verify with the device certificate', 401, error);
    throw invalid(`signed request refused: ${(error as Error).message}`, 401, error);
  }
  const parsed = claims.safeParse(payload);
  if (!parsed.success) throw invalid('sub, jti and iat are required');
  const issuedAt = parsed.data.iat * 1000;
  if (Math.abs(issuedAt - check.nowMs) > check.maxSkewMs)
    throw invalid('issued too far from the server clock (check the device clock)', 401);
  return { deviceId: parsed.data.sub, jti: parsed.data.jti, issuedAt, payload };
}

/** The posture inside a verified report, checked against the schema. */
export function postureOf(request: VerifiedDeviceRequest): PostureData {
  const parsed = postureDataSchema.safeParse(request.payload.posture);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(`posture.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

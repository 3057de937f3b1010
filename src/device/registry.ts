import { createHash, type KeyObject, randomBytes, randomInt, X509Certificate } from 'node:crypto';
import { type CertificateAuthority, checkCsr, DEFAULT_CSR_POLICY, deviceSpiffeId } from '../ca/index.ts';
import { VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { badRequest } from '../internal/http.ts';
import type { DevicesTable } from '../store/index.ts';
import { isUniqueViolation, type Store } from '../store/index.ts';
import { type PostureData, postureDataSchema } from './data.ts';
import {
  POSTURE_REPORT_TYPE,
  postureOf,
  RENEWAL_REQUEST_TYPE,
  type VerifiedDeviceRequest,
  verifyDeviceRequest,
} from './report.ts';

export type DeviceState = 'registered' | 'managed' | 'revoked';

/** What `vigil device enroll` and a renewal get back. */
export interface IssuedDevice {
  deviceId: string;
  state: DeviceState;
  spiffeId: string;
  serial: string;
  /** Device certificate then intermediate, PEM: what the device presents in TLS. */
  certificatePem: string;
  /** The CA's trust bundle, PEM. */
  bundlePem: string;
  notAfter: Date;
  renewAfter: Date;
}

export interface DeviceRequestInfo {
  /** PKCS#10 CSR, PEM. */
  csr: string;
  name: string;
  serial?: string | undefined;
  platform?: string | undefined;
}

export interface DeviceRecord {
  id: string;
  name: string;
  userId: string | null;
  serial: string | null;
  platform: string | null;
  state: DeviceState;
  managedBy: string | null;
  certSerial: string | null;
  certNotAfter: number | null;
  enrolledAt: number;
  updatedAt: number;
  revokedAt: number | null;
  revokedReason: string | null;
}

/** One step of a device authorization grant, in RFC 8628's words. */
export type AuthorizationPoll =
  | { status: 'authorization_pending' | 'slow_down' | 'expired_token' | 'access_denied' | 'invalid_grant' }
  | { status: 'issued'; device: IssuedDevice };

export interface StartedAuthorization {
  deviceCode: string;
  userCode: string;
  expiresAt: number;
  intervalS: number;
}

export interface PendingAuthorization {
  userCode: string;
  name: string;
  serial: string | null;
  platform: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface DeviceRegistryOptions {
  store: Store;
  /** Issues the device certificates; enrollment and renewal need it, listing does not. */
  ca?: CertificateAuthority | undefined;
  clock?: Clock;
  /** Enrolled devices start managed (config `devices.auto_approve`). */
  autoApprove?: boolean;
  authorizationTtlMs?: number;
  postureMaxSkewMs?: number;
  /** Ends the sessions bound to a revoked device. */
  onRevoked?: (deviceId: string, reason: string) => Promise<unknown>;
}

/** Poll interval of the device authorization grant; polling faster gets `slow_down`. */
export const AUTHORIZATION_INTERVAL_S = 2;
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
const MAX_NAME_LENGTH = 128;
const MAX_TOKEN_USES = 10_000;
/** Device grants waiting for a browser approval at once, across all users. */
export const MAX_PENDING_AUTHORIZATIONS = 1000;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const newDeviceId = () => `d-${randomBytes(8).toString('hex')}`;

function notFound(id: string): VigilError {
  return new VigilError('ERR_DEVICE_NOT_FOUND', `no device ${id.slice(0, 80)}`, {
    status: 404,
    publicMessage: 'device not found',
  });
}

function revoked(): VigilError {
  return new VigilError('ERR_DEVICE_REVOKED', 'the device is revoked', {
    status: 403,
    publicMessage: 'device revoked',
  });
}

/** An RFC 8628 user code: 8 consonants in two groups, easy to read out and type. */
function newUserCode(): string {
  let code = '';
  for (let index = 0; index < 8; index++) code += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

/** Accepts user codes as people type them: any case, with or without the dash. */
export function normalizeUserCode(input: string): string | undefined {
  const letters = input.toUpperCase().replace(/[\s-]/g, '');
  if (letters.length !== 8 || [...letters].some((char) => !USER_CODE_ALPHABET.includes(char)))
    return undefined;
  return `${letters.slice(0, 4)}-${letters.slice(4)}`;
}

function toRecord(row: DevicesTable): DeviceRecord {
  return {
    id: row.id,
    name: row.name,
    userId: row.user_id,
    serial: row.serial,
    platform: row.platform,
    state: row.state as DeviceState,
    managedBy: row.managed_by,
    certSerial: row.cert_serial,
    certNotAfter: row.cert_not_after,
    enrolledAt: row.enrolled_at,
    updatedAt: row.updated_at,
    revokedAt: row.revoked_at,
    revokedReason: row.revoked_reason,
  };
}

function checkInfo(info: DeviceRequestInfo): void {
  if (typeof info.name !== 'string' || info.name.length === 0 || info.name.length > MAX_NAME_LENGTH)
    throw badRequest(`name must be 1-${MAX_NAME_LENGTH} characters`);
  if (info.serial !== undefined && (typeof info.serial !== 'string' || info.serial.length > 128))
    throw badRequest('serial must be a string of at most 128 characters');
  if (info.platform !== undefined && !['linux', 'macos', 'windows'].includes(info.platform))
    throw badRequest('platform must be linux, macos or windows');
}

/**
 * The device control plane: enrollment (token or device authorization grant), approval,
 * revocation, certificate renewal and posture intake. Every change is written to the
 * store and announced on the change feed, where each replica's inventory picks it up.
 */
export class DeviceRegistry {
  readonly #store: Store;
  readonly #ca: CertificateAuthority | undefined;
  readonly #clock: Clock;
  readonly #autoApprove: boolean;
  readonly #authorizationTtlMs: number;
  readonly #postureMaxSkewMs: number;
  readonly #onRevoked: DeviceRegistryOptions['onRevoked'];

  constructor(options: DeviceRegistryOptions) {
    this.#store = options.store;
    this.#ca = options.ca;
    this.#clock = options.clock ?? systemClock;
    this.#autoApprove = options.autoApprove ?? false;
    this.#authorizationTtlMs = options.authorizationTtlMs ?? 600_000;
    this.#postureMaxSkewMs = options.postureMaxSkewMs ?? 300_000;
    this.#onRevoked = options.onRevoked;
  }

  get postureMaxSkewMs(): number {
    return this.#postureMaxSkewMs;
  }

  /** Creates an enrollment token; only its hash is stored, the token is shown once. */
  async createEnrollmentToken(options: {
    createdBy: string;
    ttlMs: number;
    maxUses?: number;
    managed?: boolean;
    note?: string;
  }): Promise<{ id: string; token: string; expiresAt: number; maxUses: number; managed: boolean }> {
    const maxUses = options.maxUses ?? 1;
    if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > MAX_TOKEN_USES)
      throw badRequest(`uses must be 1-${MAX_TOKEN_USES}`);
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) throw badRequest('ttl must be positive');
    const id = randomBytes(6).toString('hex');
    const token = `vet_${id}_${randomBytes(24).toString('base64url')}`;
    const now = this.#clock.now();
    const expiresAt = now + options.ttlMs;
    await this.#store.db
      .insertInto('device_enrollment_tokens')
      .values({
        id,
        token_sha256: sha256(token),
        created_by: options.createdBy,
        note: options.note?.slice(0, 256) ?? null,
        managed: options.managed ? 1 : 0,
        max_uses: maxUses,
        uses: 0,
        created_at: now,
        expires_at: expiresAt,
        revoked_at: null,
      })
      .execute();
    await this.#store.changes.publish({
      channel: 'device',
      action: 'token-created',
      id: `token:${id}`,
      data: { managed: options.managed === true, max_uses: maxUses, by: options.createdBy },
    });
    return { id, token, expiresAt, maxUses, managed: options.managed === true };
  }

  /** Enrolls with an admin's enrollment token: the token is spent atomically, then the cert issued. */
  async enrollWithToken(token: string, info: DeviceRequestInfo): Promise<IssuedDevice> {
    checkInfo(info);
    const ca = this.#requireCa();
    checkCsr(info.csr, DEFAULT_CSR_POLICY);
    const now = this.#clock.now();
    const row =
      token.length <= 256
        ? await this.#store.db
            .selectFrom('device_enrollment_tokens')
            .selectAll()
            .where('token_sha256', '=', sha256(token))
            .executeTakeFirst()
        : undefined;
    const spent = row
      ? await this.#store.db
          .updateTable('device_enrollment_tokens')
          .set((eb) => ({ uses: eb('uses', '+', 1) }))
          .where('id', '=', row.id)
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', now)
          .where((eb) => eb('uses', '<', eb.ref('max_uses')))
          .executeTakeFirst()
      : undefined;
    if (!row || Number(spent?.numUpdatedRows ?? 0) === 0) {
      throw new VigilError(
        'ERR_DEVICE_TOKEN_INVALID',
        'enrollment token unknown, expired, revoked or used up',
        {
          status: 401,
          publicMessage: 'enrollment token unknown, expired, revoked or used up',
        },
      );
    }
    try {
      return await this.#issue(ca, info, {
        userId: null,
        managedBy: row.managed === 1 ? `token:${row.id}` : undefined,
        via: `token:${row.id}`,
      });
    } catch (error) {
      // Nothing was enrolled: the use goes back to the token.
      await this.#store.db
        .updateTable('device_enrollment_tokens')
        .set((eb) => ({ uses: eb('uses', '-', 1) }))
        .where('id', '=', row.id)
        .execute();
      throw error;
    }
  }

  /** Starts a device authorization grant (RFC 8628) for `vigil device enroll` in a terminal. */
  async startAuthorization(info: DeviceRequestInfo): Promise<StartedAuthorization> {
    checkInfo(info);
    this.#requireCa();
    checkCsr(info.csr, DEFAULT_CSR_POLICY);
    await this.#checkSerialFree(info.serial);
    const deviceCode = randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    // Anyone can start a grant: cap what is waiting, so a flood cannot fill the table.
    const waiting = await this.#store.db
      .selectFrom('device_authorizations')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('status', '=', 'pending')
      .where('expires_at', '>', now)
      .executeTakeFirstOrThrow();
    if (Number(waiting.count) >= MAX_PENDING_AUTHORIZATIONS) {
      throw new VigilError('ERR_DEVICE_AUTHORIZATION', 'too many enrollments waiting for approval', {
        status: 429,
        publicMessage: 'too many enrollments waiting for approval; try again in a few minutes',
      });
    }
    const expiresAt = now + this.#authorizationTtlMs;
    for (let attempt = 0; ; attempt++) {
      const userCode = newUserCode();
      try {
        await this.#store.db
          .insertInto('device_authorizations')
          .values({
            id: randomBytes(8).toString('hex'),
            device_code_sha256: sha256(deviceCode),
            user_code: userCode,
            name: info.name,
            serial: info.serial ?? null,
            platform: info.platform ?? null,
            csr_pem: info.csr,
            status: 'pending',
            user_id: null,
            device_id: null,
            created_at: now,
            expires_at: expiresAt,
            polled_at: null,
          })
          .execute();
        await this.#pruneAuthorizations(now);
        return { deviceCode, userCode, expiresAt, intervalS: AUTHORIZATION_INTERVAL_S };
      } catch (error) {
        // A user code already in flight: draw another (20^8 codes, so this is rare).
        if (!isUniqueViolation(error) || attempt >= 4) throw error;
      }
    }
  }

  /** The pending grant a user code names, for the approval page; undefined when none. */
  async pendingAuthorization(userCode: string): Promise<PendingAuthorization | undefined> {
    const code = normalizeUserCode(userCode);
    if (code === undefined) return undefined;
    const row = await this.#store.db
      .selectFrom('device_authorizations')
      .selectAll()
      .where('user_code', '=', code)
      .where('status', '=', 'pending')
      .where('expires_at', '>', this.#clock.now())
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      userCode: row.user_code,
      name: row.name,
      serial: row.serial,
      platform: row.platform,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
    };
  }

  /** A logged-in user approves (or denies) the grant their terminal shows; false when it is gone. */
  async decideAuthorization(userCode: string, userId: string, approve: boolean): Promise<boolean> {
    const code = normalizeUserCode(userCode);
    if (code === undefined) return false;
    const result = await this.#store.db
      .updateTable('device_authorizations')
      .set({ status: approve ? 'approved' : 'denied', user_id: userId })
      .where('user_code', '=', code)
      .where('status', '=', 'pending')
      .where('expires_at', '>', this.#clock.now())
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** The terminal's poll: pending until approved, then the certificate, exactly once. */
  async pollAuthorization(deviceCode: string): Promise<AuthorizationPoll> {
    if (typeof deviceCode !== 'string' || deviceCode.length === 0 || deviceCode.length > 128)
      return { status: 'invalid_grant' };
    const now = this.#clock.now();
    const row = await this.#store.db
      .selectFrom('device_authorizations')
      .selectAll()
      .where('device_code_sha256', '=', sha256(deviceCode))
      .executeTakeFirst();
    if (!row || row.status === 'issued') return { status: 'invalid_grant' };
    if (row.status === 'denied') return { status: 'access_denied' };
    if (row.expires_at <= now) return { status: 'expired_token' };
    if (row.status === 'pending') {
      const tooSoon = row.polled_at !== null && now - row.polled_at < (AUTHORIZATION_INTERVAL_S * 1000) / 2;
      await this.#store.db
        .updateTable('device_authorizations')
        .set({ polled_at: now })
        .where('id', '=', row.id)
        .execute();
      return { status: tooSoon ? 'slow_down' : 'authorization_pending' };
    }
    // Approved: claim it, so that two polls (or two replicas) never issue twice.
    const claimed = await this.#store.db
      .updateTable('device_authorizations')
      .set({ status: 'issued' })
      .where('id', '=', row.id)
      .where('status', '=', 'approved')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) === 0) return { status: 'invalid_grant' };
    const device = await this.#issue(
      this.#requireCa(),
      {
        csr: row.csr_pem,
        name: row.name,
        serial: row.serial ?? undefined,
        platform: row.platform ?? undefined,
      },
      { userId: row.user_id, managedBy: undefined, via: 'login' },
    );
    await this.#store.db
      .updateTable('device_authorizations')
      .set({ device_id: device.deviceId, csr_pem: '' })
      .where('id', '=', row.id)
      .execute();
    return { status: 'issued', device };
  }

  /** Marks a registered device managed (an admin vouched for it). */
  async approve(deviceId: string, by: string): Promise<DeviceRecord> {
    const row = await this.#row(deviceId);
    if (row.state === 'revoked') throw revoked();
    if (row.state !== 'managed') {
      await this.#setManaged(deviceId, by);
    }
    return toRecord(await this.#row(deviceId));
  }

  /**
   * Revokes a device: its state, every certificate issued to it (CRL and change feed)
   * and its sessions. Each replica's proxy refuses it from the next request on.
   */
  async revoke(deviceId: string, reason: string): Promise<DeviceRecord> {
    const row = await this.#row(deviceId);
    const now = this.#clock.now();
    if (row.state !== 'revoked') {
      await this.#store.db
        .updateTable('devices')
        .set({ state: 'revoked', revoked_at: now, revoked_reason: reason.slice(0, 256), updated_at: now })
        .where('id', '=', deviceId)
        .execute();
      await this.#store.changes.publish({
        channel: 'device',
        action: 'revoked',
        id: deviceId,
        data: { reason: reason.slice(0, 256) },
      });
    }
    if (this.#ca) {
      const certificates = await this.#store.db
        .selectFrom('ca_certificates')
        .select('serial')
        .where('kind', '=', 'device')
        .where('subject', '=', deviceId)
        .where('revoked_at', 'is', null)
        .where('not_after', '>', now)
        .execute();
      for (const { serial } of certificates) await this.#ca.revoke(serial, 'privilege-withdrawn');
    }
    await this.#onRevoked?.(deviceId, reason);
    return toRecord(await this.#row(deviceId));
  }

  async get(deviceId: string): Promise<DeviceRecord> {
    return toRecord(await this.#row(deviceId));
  }

  async list(filter: { state?: DeviceState; userId?: string; limit?: number } = {}): Promise<DeviceRecord[]> {
    let query = this.#store.db.selectFrom('devices').selectAll();
    if (filter.state !== undefined) query = query.where('state', '=', filter.state);
    if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
    const rows = await query
      .orderBy('enrolled_at', 'desc')
      .limit(Math.min(filter.limit ?? 1000, 10_000))
      .execute();
    return rows.map(toRecord);
  }

  /** Latest posture of every source for a device (what `vigil device show` prints). */
  async postureOf(deviceId: string): Promise<{ source: string; reportedAt: number; data: PostureData }[]> {
    const rows = await this.#store.db
      .selectFrom('device_posture')
      .selectAll()
      .where('device_id', '=', deviceId)
      .execute();
    return rows.map((row) => ({
      source: row.source,
      reportedAt: Number(row.reported_at),
      data: postureDataSchema.parse(JSON.parse(row.data_json)),
    }));
  }

  /** Takes a posture report the agent signed with the device key; refuses replays. */
  async acceptReport(jws: string): Promise<{ deviceId: string; state: DeviceState; reportedAt: number }> {
    const request = await this.#verify(jws, POSTURE_REPORT_TYPE);
    // `managed` and `compliant` are a provider's word about the device, never its own.
    const { managed: _managed, compliant: _compliant, ...posture } = postureOf(request);
    const row = await this.#row(request.deviceId);
    // A report dated ahead (within the skew) counts from now: it must not look fresher.
    const reportedAt = Math.min(request.issuedAt, this.#clock.now());
    await this.recordPosture({
      deviceId: request.deviceId,
      source: 'agent',
      reportedAt,
      replayId: `agent:${request.deviceId}:${request.jti}`,
      data: posture,
    });
    return { deviceId: row.id, state: row.state as DeviceState, reportedAt };
  }

  /** A new certificate for an enrolled device, asked for with a request signed by its current key. */
  async renew(jws: string): Promise<IssuedDevice> {
    const request = await this.#verify(jws, RENEWAL_REQUEST_TYPE);
    const csr = request.payload.csr;
    if (typeof csr !== 'string') throw badRequest('csr must be a PEM string');
    await this.#claimReplayId(
      `renew:${request.deviceId}:${request.jti}`,
      request.deviceId,
      'renewal',
      request.issuedAt,
    );
    const row = await this.#row(request.deviceId);
    return this.#certify(this.#requireCa(), row, csr);
  }

  /**
   * Stores one source's posture for a device, once per `replayId`: the latest per source
   * feeds the inventory, every report stays in the history. A provider that says it
   * manages the device may make it managed.
   */
  async recordPosture(report: {
    deviceId: string;
    source: string;
    reportedAt: number;
    replayId: string;
    data: PostureData;
    vouchManaged?: boolean;
  }): Promise<void> {
    const now = this.#clock.now();
    const dataJson = JSON.stringify(report.data);
    await this.#store.db.transaction().execute(async (tx) => {
      try {
        await tx
          .insertInto('posture_reports')
          .values({
            id: report.replayId,
            device_id: report.deviceId,
            source: report.source,
            reported_at: report.reportedAt,
            received_at: now,
            data_json: dataJson,
          })
          .execute();
      } catch (error) {
        if (isUniqueViolation(error)) throw replayed();
        throw error;
      }
      await tx
        .insertInto('device_posture')
        .values({
          device_id: report.deviceId,
          source: report.source,
          reported_at: report.reportedAt,
          received_at: now,
          data_json: dataJson,
        })
        .onConflict((conflict) =>
          conflict
            .columns(['device_id', 'source'])
            .doUpdateSet({ reported_at: report.reportedAt, received_at: now, data_json: dataJson })
            .where('device_posture.reported_at', '<=', report.reportedAt),
        )
        .execute();
    });
    if (report.vouchManaged === true && report.data.managed === true) {
      const row = await this.#row(report.deviceId);
      if (row.state === 'registered') {
        await this.#setManaged(report.deviceId, `provider:${report.source}`);
      }
    }
    await this.#store.changes.publish({ channel: 'posture', action: 'reported', id: report.deviceId });
  }

  /** The device a provider names by id or serial; undefined when this server has none. */
  async findDevice(reference: { id?: string; serial?: string }): Promise<DeviceRecord | undefined> {
    if (reference.id !== undefined) {
      const row = await this.#store.db
        .selectFrom('devices')
        .selectAll()
        .where('id', '=', reference.id)
        .executeTakeFirst();
      return row ? toRecord(row) : undefined;
    }
    if (reference.serial === undefined) return undefined;
    // A serial is what the device claimed at enrollment: match it only when exactly one
    // live device claims it, never guess between two.
    const rows = await this.#store.db
      .selectFrom('devices')
      .selectAll()
      .where('serial', '=', reference.serial)
      .where('state', '!=', 'revoked')
      .limit(2)
      .execute();
    return rows.length === 1 && rows[0] ? toRecord(rows[0]) : undefined;
  }

  async #verify(jws: string, type: typeof POSTURE_REPORT_TYPE | typeof RENEWAL_REQUEST_TYPE) {
    const request: VerifiedDeviceRequest = await verifyDeviceRequest(jws, type, {
      nowMs: this.#clock.now(),
      maxSkewMs: this.#postureMaxSkewMs,
      keyOf: (deviceId) => this.#currentKey(deviceId),
    });
    return request;
  }

  /** The key of the device's current certificate, when the device and certificate are good. */
  async #currentKey(deviceId: string): Promise<KeyObject | undefined> {
    const row = await this.#store.db
      .selectFrom('devices')
      .selectAll()
      .where('id', '=', deviceId)
      .executeTakeFirst();
    if (!row || row.cert_pem === null) return undefined;
    if (row.state === 'revoked') throw revoked();
    const certificate = new X509Certificate(row.cert_pem);
    const now = this.#clock.now();
    const serial = (row.cert_serial ?? '').toLowerCase();
    if (Date.parse(certificate.validTo) <= now || this.#ca?.isRevoked(serial) === true) {
      throw new VigilError(
        'ERR_DEVICE_REPORT_INVALID',
        'the device certificate expired or was revoked; enroll again',
        { status: 401, publicMessage: 'device certificate expired or revoked: enroll again' },
      );
    }
    return certificate.publicKey;
  }

  async #claimReplayId(id: string, deviceId: string, source: string, reportedAt: number): Promise<void> {
    try {
      await this.#store.db
        .insertInto('posture_reports')
        .values({
          id,
          device_id: deviceId,
          source,
          reported_at: reportedAt,
          received_at: this.#clock.now(),
          data_json: '{}',
        })
        .execute();
    } catch (error) {
      if (isUniqueViolation(error)) throw replayed();
      throw error;
    }
  }

  async #issue(
    ca: CertificateAuthority,
    info: DeviceRequestInfo,
    how: { userId: string | null; managedBy: string | undefined; via: string },
  ): Promise<IssuedDevice> {
    await this.#checkSerialFree(info.serial);
    const deviceId = newDeviceId();
    const managedBy = how.managedBy ?? (this.#autoApprove ? 'auto' : undefined);
    const now = this.#clock.now();
    const row: DevicesTable = {
      id: deviceId,
      user_id: how.userId,
      name: info.name,
      serial: info.serial ?? null,
      state: managedBy === undefined ? 'registered' : 'managed',
      cert_serial: null,
      cert_not_after: null,
      enrolled_at: now,
      updated_at: now,
      revoked_at: null,
      cert_pem: null,
      platform: info.platform ?? null,
      managed_by: managedBy ?? null,
      revoked_reason: null,
    };
    await this.#store.db.insertInto('devices').values(row).execute();
    let issued: IssuedDevice;
    try {
      issued = await this.#certify(ca, row, info.csr);
    } catch (error) {
      await this.#store.db.deleteFrom('devices').where('id', '=', deviceId).execute();
      throw error;
    }
    await this.#store.changes.publish({
      channel: 'device',
      action: 'enrolled',
      id: deviceId,
      data: { name: info.name, user: how.userId, via: how.via, state: row.state },
    });
    return issued;
  }

  async #certify(ca: CertificateAuthority, row: DevicesTable, csr: string): Promise<IssuedDevice> {
    if (row.state === 'revoked') throw revoked();
    const leaf = await ca.signDeviceCertificate({ csr, deviceId: row.id });
    const updated = await this.#store.db
      .updateTable('devices')
      .set({
        cert_serial: leaf.serial,
        cert_not_after: leaf.notAfter.getTime(),
        cert_pem: leaf.pem,
        updated_at: this.#clock.now(),
      })
      .where('id', '=', row.id)
      .where('state', '!=', 'revoked')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      // Revoked while signing: the revocation did not see this certificate, so revoke it here.
      await ca.revoke(leaf.serial, 'privilege-withdrawn');
      throw revoked();
    }
    return {
      deviceId: row.id,
      state: row.state as DeviceState,
      spiffeId: deviceSpiffeId(ca.trustDomain, row.id),
      serial: leaf.serial,
      certificatePem: leaf.chainPem,
      bundlePem: ca.bundlePem(),
      notAfter: leaf.notAfter,
      renewAfter: leaf.renewAfter,
    };
  }

  /**
   * A hardware serial can belong to one live device: providers report by serial, and a
   * second device claiming a serial already enrolled would take over its MDM verdicts.
   */
  async #checkSerialFree(serial: string | undefined): Promise<void> {
    if (serial === undefined) return;
    const taken = await this.#store.db
      .selectFrom('devices')
      .select('id')
      .where('serial', '=', serial)
      .where('state', '!=', 'revoked')
      .executeTakeFirst();
    if (taken) {
      throw new VigilError('ERR_DEVICE_SERIAL_IN_USE', `serial already enrolled as ${taken.id}`, {
        status: 409,
        publicMessage: 'a device with this serial is already enrolled; ask an admin to revoke it first',
      });
    }
  }

  async #setManaged(deviceId: string, by: string): Promise<void> {
    await this.#store.db
      .updateTable('devices')
      .set({ state: 'managed', managed_by: by, updated_at: this.#clock.now() })
      .where('id', '=', deviceId)
      .where('state', '=', 'registered')
      .execute();
    await this.#store.changes.publish({ channel: 'device', action: 'approved', id: deviceId, data: { by } });
  }

  async #row(deviceId: string): Promise<DevicesTable> {
    const row = await this.#store.db
      .selectFrom('devices')
      .selectAll()
      .where('id', '=', deviceId)
      .executeTakeFirst();
    if (!row) throw notFound(deviceId);
    return row;
  }

  #requireCa(): CertificateAuthority {
    if (this.#ca) return this.#ca;
    throw new VigilError(
      'ERR_DEVICE_UNAVAILABLE',
      'device enrollment needs the internal CA (ca in vigil.yaml)',
      {
        status: 503,
        publicMessage: 'device enrollment is not set up on this server',
      },
    );
  }

  async #pruneAuthorizations(now: number): Promise<void> {
    // Grants a day past their expiry have no use left; keeps the table small.
    await this.#store.db
      .deleteFrom('device_authorizations')
      .where('expires_at', '<', now - 86_400_000)
      .execute();
  }
}

function replayed(): VigilError {
  return new VigilError('ERR_DEVICE_REPORT_REPLAYED', 'this report was already accepted once', {
    status: 409,
    publicMessage: 'replayed report',
  });
}

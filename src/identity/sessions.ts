import { randomBytes } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Clock } from '../internal/clock.ts';
import type { ChangeEvent, Database, SessionsTable, Store } from '../store/index.ts';
import type { Logger } from '../telemetry/index.ts';
import { optionalString, stringList } from './claims.ts';
import type { Identity } from './identity.ts';
import type { IdentityReason } from './reasons.ts';
import { Sealer } from './seal.ts';

/** How often last-seen times are written back, and pushed to other replicas, in one batch. */
export const LAST_SEEN_FLUSH_MS = 5000;
/** Ended-by-idleness sessions stay in memory this much longer, for last-seen news from other replicas. */
const IDLE_GRACE_MS = 60_000;
/** Live sessions whose ids go into one change event (NOTIFY payloads are capped near 8 KB). */
const SEEN_PER_EVENT = 80;
/** Last-seen updates per transaction, so that thousands of sessions do not hold the event loop at once. */
const SEEN_PER_WRITE = 500;
/** Claims kept with a session; a larger claim set keeps only the mapped attributes. */
const MAX_CLAIMS_JSON = 4096;

export interface SessionPolicy {
  /** Absolute lifetime, ms. */
  maxAgeMs: number;
  /** Inactivity after which the session ends, ms. */
  idleTimeoutMs: number;
}

export interface NewSession {
  idp: string;
  subject: string;
  email: string | undefined;
  groups: readonly string[];
  amr: readonly string[];
  acr: string | undefined;
  /** When the user authenticated at the IdP (auth_time), epoch ms. */
  authTime: number;
  claims: Readonly<Record<string, unknown>>;
  deviceId?: string | undefined;
  refreshToken?: string | undefined;
}

/** A session as the admin API lists it; never the refresh token. */
export interface SessionView {
  id: string;
  user_id: string;
  idp: string;
  email: string | null;
  groups: string[];
  amr: string[];
  device_id: string | null;
  auth_time: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
}

/** Outcome of a refresh with the IdP: fresh attributes, or the IdP no longer knows the user. */
export type RefreshOutcome =
  | { kind: 'updated'; groups: readonly string[]; amr?: readonly string[]; refreshToken?: string | undefined }
  | { kind: 'denied' }
  | { kind: 'unavailable' };

export type Refresher = (idp: string, refreshToken: string) => Promise<RefreshOutcome>;

interface LiveSession {
  row: SessionsTable;
  identity: Identity;
  /** Last refresh with the IdP on this replica (creation counts as one). */
  refreshedAt: number;
}

export type SessionLookup =
  | { identity: Identity; reason?: undefined }
  | { identity?: undefined; reason: IdentityReason };

/**
 * Sessions: rows in the store, live ones mirrored in memory so that the request path
 * never waits for the database. The change feed keeps every replica's mirror current:
 * a revocation on one replica removes the session from all of them within the feed's
 * latency (LISTEN/NOTIFY: milliseconds). Last-seen times are written back in batches.
 */
export class SessionManager {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #policy: SessionPolicy;
  readonly #cookies: Sealer;
  readonly #refreshTokens: Sealer;
  readonly #live = new Map<string, LiveSession>();
  readonly #seen = new Map<string, number>();
  readonly #refreshing = new Set<string>();
  readonly #refresher: Refresher | undefined;
  readonly #refreshIntervalMs: (idp: string) => number;
  readonly #unsubscribe: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The flush running now, if any; flushes run one after another. */
  #flushing: Promise<void> = Promise.resolve();

  constructor(options: {
    store: Store;
    clock: Clock;
    logger: Logger;
    key: Uint8Array;
    policy: SessionPolicy;
    refresher?: Refresher;
    refreshIntervalMs?: (idp: string) => number;
  }) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#policy = options.policy;
    this.#cookies = new Sealer(options.key, 'session cookie');
    this.#refreshTokens = new Sealer(options.key, 'refresh token');
    this.#refresher = options.refresher;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? (() => 15 * 60_000);
  }

  /** Loads live sessions and follows the change feed; resolves once the mirror is complete. */
  async start(options: { flushIntervalMs?: number } = {}): Promise<void> {
    this.#unsubscribe.push(this.#store.changes.subscribe('session', (event) => this.#onChange(event)));
    this.#unsubscribe.push(
      this.#store.changes.onResync(() => {
        this.reload().catch((error: unknown) => this.#logger.error({ err: error }, 'session resync failed'));
      }),
    );
    await this.reload();
    this.#timer = setInterval(() => {
      this.flush().catch((error: unknown) =>
        this.#logger.warn({ err: error }, 'session last-seen flush failed'),
      );
    }, options.flushIntervalMs ?? LAST_SEEN_FLUSH_MS);
    this.#timer.unref();
  }

  /** Replaces the mirror with the store's live sessions (start, and after a lost feed). */
  async reload(): Promise<void> {
    const now = this.#clock.now();
    const rows = await this.#store.db
      .selectFrom('sessions')
      .selectAll()
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .execute();
    const fresh = new Map<string, LiveSession>();
    for (const row of rows) fresh.set(row.id, this.#merged(row));
    this.#live.clear();
    for (const [id, live] of fresh) this.#live.set(id, live);
  }

  /** Creates a session after a login; returns its id and the sealed cookie value. */
  async create(input: NewSession): Promise<{ id: string; cookie: string; expiresAt: number }> {
    const now = this.#clock.now();
    // Prefixed like Vigil's other ids (vat_, vet_): a random id may begin with `-`, which a
    // command line (`vigil session revoke <id>`) would take for an option.
    const id = `ses_${randomBytes(18).toString('base64url')}`;
    const claimsJson = JSON.stringify(input.claims);
    const row: SessionsTable = {
      id,
      user_id: `${input.idp}:${input.subject}`,
      idp: input.idp,
      groups_json: JSON.stringify(input.groups),
      amr_json: JSON.stringify(input.amr),
      claims_json:
        claimsJson.length <= MAX_CLAIMS_JSON
          ? claimsJson
          : JSON.stringify({ sub: input.subject, email: input.email, acr: input.acr }),
      device_id: input.deviceId ?? null,
      auth_time: input.authTime,
      created_at: now,
      last_seen_at: now,
      expires_at: now + this.#policy.maxAgeMs,
      revoked_at: null,
      revoked_reason: null,
      refresh_token_enc: input.refreshToken ? this.#refreshTokens.seal(input.refreshToken) : null,
    };
    await this.#store.db.insertInto('sessions').values(row).execute();
    await this.#upsertUser(row, input);
    this.#live.set(id, this.#toLive(row, now));
    await this.#store.changes.publish({ channel: 'session', action: 'created', id });
    return { id, cookie: this.#cookies.seal(id), expiresAt: row.expires_at };
  }

  /**
   * The identity a session cookie stands for, synchronously from memory. Checks absolute
   * expiry, idle timeout and, when the route asks, the age of the login (`reauth_after`).
   */
  lookup(cookie: string, options: { reauthAfterMs?: number | undefined } = {}): SessionLookup {
    const id = this.#cookies.open(cookie, 512);
    if (id === undefined) return { reason: 'session-cookie-invalid' };
    const live = this.#live.get(id);
    if (!live) return { reason: 'session-unknown' };
    const now = this.#clock.now();
    if (live.row.revoked_at !== null) return { reason: 'session-revoked' };
    if (now >= live.row.expires_at) return { reason: 'session-expired' };
    if (now - live.row.last_seen_at >= this.#policy.idleTimeoutMs) return { reason: 'session-idle' };
    if (options.reauthAfterMs !== undefined && now - live.row.auth_time >= options.reauthAfterMs) {
      return { reason: 'session-reauth-required' };
    }
    live.row.last_seen_at = now;
    this.#seen.set(id, now);
    this.#maybeRefresh(live, now);
    return { identity: live.identity };
  }

  /** The session id inside a cookie, or undefined (for logout of a session that may be gone). */
  sessionIdOf(cookie: string): string | undefined {
    return this.#cookies.open(cookie, 512);
  }

  /** Revokes one session; false when there is no such live session. */
  async revoke(id: string, reason: string): Promise<boolean> {
    const result = await this.#store.db
      .updateTable('sessions')
      .set({ revoked_at: this.#clock.now(), revoked_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    this.#live.delete(id);
    const changed = Number(result.numUpdatedRows) > 0;
    if (changed) await this.#store.changes.publish({ channel: 'session', action: 'revoked', id });
    return changed;
  }

  /** Logout everywhere: revokes every session of a user; returns how many. */
  async revokeUser(userId: string, reason: string): Promise<number> {
    return this.#revokeWhere('user_id', userId, reason);
  }

  /**
   * Binds a session to the device it was first used from (seen through the device's
   * client certificate). Memory changes at once, so the next request of this session
   * already carries the device; a session keeps its first device for good.
   */
  async bindDevice(sessionId: string, deviceId: string): Promise<boolean> {
    const live = this.#live.get(sessionId);
    if (!live || live.row.device_id !== null) return false;
    this.#live.set(sessionId, this.#toLive({ ...live.row, device_id: deviceId }, live.refreshedAt));
    const result = await this.#store.db
      .updateTable('sessions')
      .set({ device_id: deviceId })
      .where('id', '=', sessionId)
      .where('device_id', 'is', null)
      .executeTakeFirst();
    const changed = Number(result.numUpdatedRows) > 0;
    if (changed) await this.#store.changes.publish({ channel: 'session', action: 'updated', id: sessionId });
    return changed;
  }

  /** Revokes every session bound to a device (lost or compromised device). */
  async revokeDevice(deviceId: string, reason: string): Promise<number> {
    return this.#revokeWhere('device_id', deviceId, reason);
  }

  /** Sessions from the store for the admin API, newest first, bounded. */
  async list(
    filter: { userId?: string; deviceId?: string; includeEnded?: boolean; limit?: number } = {},
  ): Promise<SessionView[]> {
    let query = this.#store.db.selectFrom('sessions').selectAll();
    if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
    if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
    if (!filter.includeEnded) {
      query = query.where('revoked_at', 'is', null).where('expires_at', '>', this.#clock.now());
    }
    const rows = await query
      .orderBy('created_at', 'desc')
      .limit(Math.min(filter.limit ?? 500, 5000))
      .execute();
    return rows.map(view);
  }

  /** Number of live sessions in this replica's memory. */
  get size(): number {
    return this.#live.size;
  }

  /**
   * Writes pending last-seen times and tells other replicas; drops ended sessions from
   * memory. In transactions of SEEN_PER_WRITE sessions that hand the event loop back in
   * between and, on SQLite, neither wait for another writer's lock nor sync to disk (the
   * audit writer's batches hold the lock for milliseconds): times not written now stay
   * for the next flush. `wait`: wait for the lock like any write (on close). One flush
   * at a time: a second waits for the first.
   */
  flush(options: { wait?: boolean } = {}): Promise<void> {
    const run = this.#flushing.then(() => this.#flushOnce(options.wait === true));
    this.#flushing = run.catch(() => {});
    return run;
  }

  async #flushOnce(wait: boolean): Promise<void> {
    const now = this.#clock.now();
    for (const [id, live] of this.#live) {
      // Idle ones only well past the timeout: another replica's last use may still be on its way.
      if (
        now >= live.row.expires_at ||
        now - live.row.last_seen_at >= this.#policy.idleTimeoutMs + IDLE_GRACE_MS
      ) {
        this.#live.delete(id);
      }
    }
    if (this.#seen.size === 0) return;
    const pending = [...this.#seen];
    this.#seen.clear();
    for (let start = 0; start < pending.length; start += SEEN_PER_WRITE) {
      try {
        if (start > 0) await new Promise((resolve) => setImmediate(resolve));
        if (!(await this.#writeSeen(pending.slice(start, start + SEEN_PER_WRITE), wait))) {
          this.#keepSeen(pending.slice(start));
          return;
        }
      } catch (error) {
        // Written or not, this chunk and the rest go again next time (the update only
        // ever moves a time forward).
        this.#keepSeen(pending.slice(start));
        throw error;
      }
    }
  }

  /** One transaction of last-seen times, then the news for other replicas. False: the lock was taken. */
  async #writeSeen(batch: ReadonlyArray<readonly [string, number]>, wait: boolean): Promise<boolean> {
    const write = async (tx: Transaction<Database>) => {
      for (const [id, at] of batch) {
        await tx
          .updateTable('sessions')
          .set({ last_seen_at: at })
          .where('id', '=', id)
          .where('last_seen_at', '<', at)
          .execute();
      }
    };
    if (wait) await this.#store.db.transaction().execute(write);
    else if (!(await this.#store.tryWrite(write)).written) return false;
    for (let index = 0; index < batch.length; index += SEEN_PER_EVENT) {
      const chunk = Object.fromEntries(batch.slice(index, index + SEEN_PER_EVENT));
      await this.#store.changes.publish({ channel: 'session', action: 'seen', data: { seen: chunk } });
    }
    return true;
  }

  /** Puts back times a flush did not write, unless a later use came meanwhile. */
  #keepSeen(entries: ReadonlyArray<readonly [string, number]>): void {
    for (const [id, at] of entries) if ((this.#seen.get(id) ?? 0) < at) this.#seen.set(id, at);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    await this.flush({ wait: true }).catch((error: unknown) =>
      this.#logger.warn({ err: error }, 'session flush on close failed'),
    );
  }

  async #revokeWhere(column: 'user_id' | 'device_id', value: string, reason: string): Promise<number> {
    const result = await this.#store.db
      .updateTable('sessions')
      .set({ revoked_at: this.#clock.now(), revoked_reason: reason })
      .where(column, '=', value)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    this.#dropWhere(column, value);
    const action = column === 'user_id' ? 'revoked-user' : 'revoked-device';
    await this.#store.changes.publish({ channel: 'session', action, data: { [column]: value } });
    return Number(result.numUpdatedRows);
  }

  #dropWhere(column: 'user_id' | 'device_id', value: string): void {
    for (const [id, live] of this.#live) {
      if (live.row[column] === value) this.#live.delete(id);
    }
  }

  #onChange(event: ChangeEvent): void {
    // This replica already applied its own changes before publishing them.
    if (event.origin === this.#store.changes.origin) return;
    switch (event.action) {
      case 'revoked':
        if (event.id !== undefined) this.#live.delete(event.id);
        return;
      case 'revoked-user':
      case 'revoked-device': {
        const column = event.action === 'revoked-user' ? 'user_id' : 'device_id';
        const value = event.data?.[column];
        if (typeof value === 'string') this.#dropWhere(column, value);
        return;
      }
      case 'created':
      case 'updated':
        // An update is another replica's refresh: this one need not refresh again soon.
        if (event.id !== undefined) this.#loadOne(event.id, event.action === 'updated');
        return;
      case 'seen': {
        const seen = event.data?.seen;
        if (typeof seen !== 'object' || seen === null) return;
        for (const [id, at] of Object.entries(seen)) {
          const live = this.#live.get(id);
          if (live && typeof at === 'number' && at > live.row.last_seen_at) live.row.last_seen_at = at;
        }
        return;
      }
      default:
        return;
    }
  }

  #loadOne(id: string, refreshed = false): void {
    this.#store.db
      .selectFrom('sessions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst()
      .then(
        (row) => {
          if (!row || row.revoked_at !== null || row.expires_at <= this.#clock.now()) {
            this.#live.delete(id);
            return;
          }
          const live = this.#merged(row);
          if (refreshed) live.refreshedAt = this.#clock.now();
          this.#live.set(id, live);
        },
        (error: unknown) =>
          this.#logger.warn({ err: error, session: id }, 'loading a changed session failed'),
      );
  }

  /** A row from the store, keeping the newer last-seen and refresh time this replica knows. */
  #merged(row: SessionsTable): LiveSession {
    const known = this.#live.get(row.id);
    const lastSeen = Math.max(row.last_seen_at, known?.row.last_seen_at ?? 0);
    return this.#toLive({ ...row, last_seen_at: lastSeen }, known?.refreshedAt ?? this.#clock.now());
  }

  #toLive(row: SessionsTable, refreshedAt: number): LiveSession {
    const claims = parseObject(row.claims_json);
    const subject = row.user_id.slice(row.idp.length + 1);
    const identity: Identity = Object.freeze({
      kind: 'session',
      key: `session:${row.id}`,
      userId: row.user_id,
      subject,
      idp: row.idp,
      email: optionalString(claims.email),
      groups: Object.freeze(stringList(parseArray(row.groups_json))),
      amr: Object.freeze(stringList(parseArray(row.amr_json))),
      acr: optionalString(claims.acr),
      authTime: row.auth_time,
      expiresAt: row.expires_at,
      sessionId: row.id,
      deviceId: row.device_id ?? undefined,
      claims: Object.freeze(claims),
    });
    return { row: { ...row }, identity, refreshedAt };
  }

  #maybeRefresh(live: LiveSession, now: number): void {
    const refresher = this.#refresher;
    const sealed = live.row.refresh_token_enc;
    if (!refresher || sealed === null || this.#refreshing.has(live.row.id)) return;
    if (now - live.refreshedAt < this.#refreshIntervalMs(live.row.idp)) return;
    const refreshToken = this.#refreshTokens.open(sealed);
    if (refreshToken === undefined) return;
    const id = live.row.id;
    this.#refreshing.add(id);
    live.refreshedAt = now;
    refresher(live.row.idp, refreshToken)
      .then((outcome) => this.#applyRefresh(id, outcome, sealed))
      .catch((error: unknown) => this.#logger.warn({ err: error, session: id }, 'session refresh failed'))
      .finally(() => this.#refreshing.delete(id));
  }

  /** Runs a due refresh now and waits for it (tests, and the admin "refresh" action). */
  async refreshNow(id: string): Promise<RefreshOutcome | undefined> {
    const live = this.#live.get(id);
    const sealed = live?.row.refresh_token_enc;
    if (!live || !this.#refresher || !sealed) return undefined;
    const refreshToken = this.#refreshTokens.open(sealed);
    if (refreshToken === undefined) return undefined;
    live.refreshedAt = this.#clock.now();
    const outcome = await this.#refresher(live.row.idp, refreshToken);
    await this.#applyRefresh(id, outcome, sealed);
    return outcome;
  }

  async #applyRefresh(id: string, outcome: RefreshOutcome, used: string): Promise<void> {
    if (outcome.kind === 'unavailable') return;
    if (outcome.kind === 'denied') {
      // With rotating refresh tokens, another replica may have refreshed first and the
      // token used here is spent: that is not the IdP disowning the user.
      const current = await this.#store.db
        .selectFrom('sessions')
        .select('refresh_token_enc')
        .where('id', '=', id)
        .executeTakeFirst();
      if (current && current.refresh_token_enc !== used) return;
      this.#logger.info({ session: id }, 'identity provider refused the refresh; session revoked');
      await this.revoke(id, 'idp-refresh-denied');
      return;
    }
    const live = this.#live.get(id);
    if (!live) return;
    const update: Partial<SessionsTable> = { groups_json: JSON.stringify(outcome.groups) };
    if (outcome.amr) update.amr_json = JSON.stringify(outcome.amr);
    if (outcome.refreshToken) update.refresh_token_enc = this.#refreshTokens.seal(outcome.refreshToken);
    await this.#store.db.updateTable('sessions').set(update).where('id', '=', id).execute();
    this.#live.set(id, this.#toLive({ ...live.row, ...update }, live.refreshedAt));
    await this.#store.changes.publish({ channel: 'session', action: 'updated', id });
  }

  async #upsertUser(row: SessionsTable, input: NewSession): Promise<void> {
    const existing = await this.#store.db
      .selectFrom('users')
      .select('id')
      .where('id', '=', row.user_id)
      .executeTakeFirst();
    const fields = {
      email: input.email ?? null,
      name: optionalString(input.claims.name) ?? null,
      groups_json: row.groups_json,
      last_seen_at: row.created_at,
    };
    if (existing) {
      await this.#store.db.updateTable('users').set(fields).where('id', '=', row.user_id).execute();
    } else {
      await this.#store.db
        .insertInto('users')
        .values({
          id: row.user_id,
          idp: row.idp,
          subject: input.subject,
          first_seen_at: row.created_at,
          ...fields,
        })
        .execute();
    }
  }
}

function view(row: SessionsTable): SessionView {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    id: row.id,
    user_id: row.user_id,
    idp: row.idp,
    email: optionalString(parseObject(row.claims_json).email) ?? null,
    groups: stringList(parseArray(row.groups_json)),
    amr: stringList(parseArray(row.amr_json)),
    device_id: row.device_id,
    auth_time: iso(row.auth_time),
    created_at: iso(row.created_at),
    last_seen_at: iso(row.last_seen_at),
    expires_at: iso(row.expires_at),
    revoked_at: row.revoked_at === null ? null : iso(row.revoked_at),
    revoked_reason: row.revoked_reason,
  };
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

function parseArray(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return [];
  }
}

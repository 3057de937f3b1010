import { randomUUID } from 'node:crypto';
import {
  CompactSign,
  type CryptoKey,
  compactVerify,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';
import { z } from 'zod';
import { isVigilError, VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { isUniqueViolation, type SigningKeysTable, type Store } from '../store/index.ts';

/** `signing_keys.purpose` of the keys that sign `X-Vigil-Assertion`. */
const PURPOSE = 'assertion';
/** Longest lifetime of an assertion; a retired key stays published at least this long. */
export const MAX_ASSERTION_TTL_MS = 60_000;
/** A new key every 12 hours. */
export const DEFAULT_ASSERTION_KEY_ROTATION_MS = 12 * 3_600_000;
/** Every replica reads the keys again this often, in case it missed a change event. */
export const DEFAULT_ASSERTION_KEY_RELOAD_MS = 60_000;
/**
 * How long a replaced key stays in the JWKS. It must outlast the replicas that have not
 * yet heard of its successor (one reload at most) and then their last assertion's
 * lifetime; the rest is room for clock skew between replicas.
 */
export const DEFAULT_ASSERTION_KEY_OVERLAP_MS = 10 * 60_000;
/**
 * How long a new key is published before it signs: longer than an upstream caches the
 * JWKS (jose's createRemoteJWKSet keeps it 10 minutes) plus one reload, so that no
 * upstream meets a key id it has not fetched (jose refetches at most every 30 s).
 */
export const DEFAULT_ASSERTION_KEY_PREPUBLISH_MS = 15 * 60_000;
/** Rows past their overlap are deleted this much later (kept a while for inquiries). */
const RETIRED_RETENTION_MS = 24 * 3_600_000;
/** Bound on rows read per load; a rotation deletes old rows, so a handful is normal. */
const MAX_ROWS = 256;
const SELF_CHECK_PAYLOAD = new TextEncoder().encode('vigil assertion key self-check');

/**
 * Seals private keys at rest: the server passes the session key's `Sealer` with a
 * purpose of its own, which every replica sharing the session key can open.
 */
export interface AssertionKeySealer {
  seal(plaintext: string): string;
  /** The plaintext, or undefined when the value does not authenticate. */
  open(sealed: string): string | undefined;
}

export interface AssertionKeyRingOptions {
  store: Store;
  sealer: AssertionKeySealer;
  /** A key older than this is replaced by whichever replica notices first. */
  rotationMs?: number;
  /** Period of the reload (and of the check whether the current key is due). */
  reloadMs?: number;
  /** How long a replaced key stays published; at least reloadMs + 60 s. */
  overlapMs?: number;
  /** How long the next key is published before it signs; shorter than rotationMs - reloadMs. */
  prepublishMs?: number;
  clock?: Clock;
  /** Failures of a background reload; the keys in memory keep serving meanwhile. */
  onError?: (error: unknown) => void;
}

/** The key assertions are signed with. */
export interface AssertionSigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

const base64url32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/);

/** The public half as stored: an ES256 key and nothing more (a `d` member is refused). */
const storedPublicJwk = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: base64url32,
  y: base64url32,
  kid: z.string().min(1).max(64),
  alg: z.literal('ES256'),
  use: z.literal('sig'),
});

/** What the sealed column holds: the private scalar, bound to its row by the kid. */
const sealedPrivate = z.strictObject({ kid: z.string(), d: base64url32 });

type KeyRow = Pick<
  SigningKeysTable,
  'kid' | 'public_jwk_json' | 'private_enc' | 'created_at' | 'not_after' | 'generation' | 'active_from'
>;

/** When a row's key starts signing. */
function activeFrom(row: KeyRow): number {
  return row.active_from ?? row.created_at;
}

function invalid(kid: string, why: string, cause?: unknown): VigilError {
  return new VigilError('ERR_ASSERTION_KEY_INVALID', `assertion signing key ${kid} cannot be used: ${why}`, {
    status: 503,
    publicMessage: 'service unavailable',
    ...(cause === undefined ? {} : { cause }),
  });
}

function publicJwkOf(row: KeyRow): z.infer<typeof storedPublicJwk> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.public_jwk_json);
  } catch (error) {
    throw invalid(row.kid, 'its public key is not JSON', error);
  }
  const result = storedPublicJwk.safeParse(parsed);
  if (!result.success) throw invalid(row.kid, 'its public key is not an ES256 public JWK');
  if (result.data.kid !== row.kid) throw invalid(row.kid, 'its public key names another kid');
  return result.data;
}

/**
 * The ES256 keys that sign `X-Vigil-Assertion`, shared by every replica through the
 * store (table `signing_keys`, purpose `assertion`; private keys sealed). The first
 * replica to start creates the first key; whichever replica finds the current key due
 * within `prepublishMs` creates the next one, published at once and signing from when
 * the current one is due; the others hear of it through the change feed (or their next
 * reload). A replaced key stays in the JWKS for the overlap, so that assertions it
 * signed on any replica still verify.
 *
 * Signing never touches the store: the current key and the JWKS body are in memory. A
 * store outage after start keeps them serving, and reports each failed reload.
 *
 * @example
 * const keys = await AssertionKeyRing.open({ store, sealer: new Sealer(sessionKey, 'assertion signing key') });
 * const signer = new AssertionSigner({ issuer, keys });
 */
export class AssertionKeyRing {
  readonly #store: Store;
  readonly #sealer: AssertionKeySealer;
  readonly #rotationMs: number;
  readonly #overlapMs: number;
  readonly #prepublishMs: number;
  readonly #clock: Clock;
  readonly #report: (error: unknown) => void;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Fires when a published key is due to start signing. */
  #activation: NodeJS.Timeout | undefined;
  #current: AssertionSigningKey | undefined;
  #jwksBody = '{"keys":[]}';
  /** Loads run one after another: the last one queued, then one not yet started. */
  #tail: Promise<void> = Promise.resolve();
  #pendingRefresh: Promise<void> | undefined;
  #closed = false;

  private constructor(options: AssertionKeyRingOptions) {
    this.#store = options.store;
    this.#sealer = options.sealer;
    this.#rotationMs = options.rotationMs ?? DEFAULT_ASSERTION_KEY_ROTATION_MS;
    this.#overlapMs = options.overlapMs ?? DEFAULT_ASSERTION_KEY_OVERLAP_MS;
    this.#prepublishMs = options.prepublishMs ?? DEFAULT_ASSERTION_KEY_PREPUBLISH_MS;
    this.#clock = options.clock ?? systemClock;
    this.#report = options.onError ?? (() => {});
  }

  /**
   * Loads the current keys, creating the first one in an empty store (and the next one
   * when the current is due). Rejects with a VigilError when the keys cannot be loaded
   * or opened: a replica without them must not start.
   */
  static async open(options: AssertionKeyRingOptions): Promise<AssertionKeyRing> {
    const rotationMs = options.rotationMs ?? DEFAULT_ASSERTION_KEY_ROTATION_MS;
    const reloadMs = options.reloadMs ?? DEFAULT_ASSERTION_KEY_RELOAD_MS;
    const overlapMs = options.overlapMs ?? DEFAULT_ASSERTION_KEY_OVERLAP_MS;
    if (!(reloadMs > 0)) throw new TypeError('reloadMs must be positive');
    if (!(rotationMs > reloadMs)) throw new TypeError('rotationMs must be longer than reloadMs');
    if (!(overlapMs >= reloadMs + MAX_ASSERTION_TTL_MS))
      throw new TypeError(`overlapMs must be at least reloadMs + ${MAX_ASSERTION_TTL_MS} ms`);
    const prepublishMs = options.prepublishMs ?? DEFAULT_ASSERTION_KEY_PREPUBLISH_MS;
    if (!(prepublishMs >= 0 && prepublishMs < rotationMs - reloadMs))
      throw new TypeError('prepublishMs must be at least 0 and shorter than rotationMs - reloadMs');
    const ring = new AssertionKeyRing(options);
    try {
      await ring.#sync(false);
    } catch (error) {
      if (isVigilError(error)) throw error;
      throw new VigilError(
        'ERR_ASSERTION_KEYS_UNAVAILABLE',
        `cannot load the assertion signing keys from the store: ${(error as Error).message ?? String(error)}`,
        { status: 503, publicMessage: 'service unavailable', cause: error },
      );
    }
    const changes = options.store.changes;
    ring.#unsubscribe.push(
      changes.subscribe('key', (event) => {
        // Our own rotations are installed already; other replicas' ones arrive here.
        if (event.action === 'assertion-rotated' && event.origin !== changes.origin) ring.#background();
      }),
      changes.onResync(() => ring.#background()),
    );
    ring.#timer = setInterval(() => ring.#background(), reloadMs);
    ring.#timer.unref();
    return ring;
  }

  /** The key new assertions are signed with. */
  get current(): AssertionSigningKey {
    if (this.#current === undefined) throw new Error('assertion key ring is not open');
    return this.#current;
  }

  get currentKid(): string {
    return this.current.kid;
  }

  /** `{"keys":[…]}`: the next key, the current one, and replaced keys still in their overlap. */
  get jwksBody(): string {
    return this.#jwksBody;
  }

  /** Called after the current key or the published set changed. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Replaces the current key now, whether due or not. When another replica replaces it
   * at the same moment, its key is the one both use (one new key, never two).
   */
  rotate(): Promise<void> {
    const run = this.#tail.catch(() => {}).then(() => this.#sync(true));
    this.#tail = run;
    return run;
  }

  /**
   * Reads the keys again (and rotates when the current one is due). Requests made while
   * one waits to start share it; one made while a load runs gets a load after it, since
   * the running one may have read the rows before the change it was told of.
   */
  refresh(): Promise<void> {
    if (this.#pendingRefresh) return this.#pendingRefresh;
    const run = this.#tail
      .catch(() => {})
      .then(() => {
        this.#pendingRefresh = undefined;
        return this.#sync(false);
      });
    this.#pendingRefresh = run;
    this.#tail = run;
    return run;
  }

  /** Stops the reload timer and change-feed subscriptions; the keys in memory remain. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#activation);
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#listeners.clear();
  }

  #background(): void {
    if (this.#closed) return;
    this.refresh().catch((error: unknown) => this.#report(error));
  }

  async #sync(force: boolean): Promise<void> {
    const now = this.#clock.now();
    let rows = await this.#read();
    let created = false;
    if (rows[0] === undefined) {
      created = await this.#create(1, now, now);
      rows = await this.#read();
    }
    const head = rows[0];
    if (head === undefined) throw new Error('no assertion key in the store after creating one');
    // The newest key is the current one (not one published ahead): is it due, within
    // the time its successor is published ahead?
    const dueAt = activeFrom(head) + this.#rotationMs;
    if (force || (activeFrom(head) <= now && dueAt - this.#prepublishMs <= now)) {
      created = (await this.#create(head.generation + 1, now, force ? now : Math.max(now, dueAt))) || created;
      rows = await this.#read();
    }
    await this.#install(rows, now);
    if (created) {
      await this.#store.changes
        .publish({ channel: 'key', action: 'assertion-rotated', id: this.current.kid })
        .catch((error: unknown) => this.#report(error));
    }
  }

  #read(): Promise<KeyRow[]> {
    return this.#store.db
      .selectFrom('signing_keys')
      .select([
        'kid',
        'public_jwk_json',
        'private_enc',
        'created_at',
        'not_after',
        'generation',
        'active_from',
      ])
      .where('purpose', '=', PURPOSE)
      .orderBy('generation', 'desc')
      .limit(MAX_ROWS)
      .execute();
  }

  /**
   * Inserts generation `generation`, signing from `active`, and retires the ones before
   * it (published until `active` + the overlap), in one transaction. False when another
   * replica inserted that generation first (the unique index).
   */
  async #create(generation: number, now: number, active: number): Promise<boolean> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = randomUUID();
    const { x, y } = await exportJWK(publicKey);
    const { d } = await exportJWK(privateKey);
    const publicJwk = { kty: 'EC', crv: 'P-256', x, y, kid, alg: 'ES256', use: 'sig' };
    const sealed = this.#sealer.seal(JSON.stringify({ kid, d }));
    try {
      await this.#store.db.transaction().execute(async (trx) => {
        await trx
          .insertInto('signing_keys')
          .values({
            kid,
            purpose: PURPOSE,
            algorithm: 'ES256',
            public_jwk_json: JSON.stringify(publicJwk),
            private_enc: sealed,
            created_at: now,
            not_after: null,
            state: 'current',
            generation,
            active_from: active,
          })
          .execute();
        await trx
          .updateTable('signing_keys')
          .set({ state: 'retired', not_after: active + this.#overlapMs })
          .where('purpose', '=', PURPOSE)
          .where('generation', '<', generation)
          .where('not_after', 'is', null)
          .execute();
        await trx
          .deleteFrom('signing_keys')
          .where('purpose', '=', PURPOSE)
          .where('not_after', '<', now - RETIRED_RETENTION_MS)
          .execute();
      });
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  /** All or nothing: a row that does not parse or open leaves the keys in memory as they were. */
  async #install(rows: readonly KeyRow[], now: number): Promise<void> {
    // None active yet only on a replica whose clock is behind the one that created the
    // first key: its oldest published key serves (published, so verifiable).
    const active = rows.findIndex((row) => activeFrom(row) <= now);
    const signing = active === -1 ? rows.length - 1 : active;
    const head = rows[signing];
    if (head === undefined) throw new Error('no active assertion key in the store');
    const publicJwks = rows.map(publicJwkOf);
    const current =
      this.#current?.kid === head.kid ? this.#current : await this.#open(head, publicJwks[signing] as JWK);
    const published = publicJwks.filter((_, index) => {
      const notAfter = rows[index]?.not_after ?? null;
      return index <= signing || notAfter === null || notAfter > now;
    });
    // A key published ahead starts signing on time here, not at the next reload.
    const next = rows[0];
    clearTimeout(this.#activation);
    if (signing > 0 && next !== undefined && !this.#closed) {
      this.#activation = setTimeout(() => this.#background(), Math.max(0, activeFrom(next) - now));
      this.#activation.unref();
    }
    const body = JSON.stringify({ keys: published });
    if (current === this.#current && body === this.#jwksBody) return;
    this.#current = current;
    this.#jwksBody = body;
    for (const listener of this.#listeners) listener();
  }

  /** Unseals the private key and checks that it signs what its public key verifies. */
  async #open(row: KeyRow, publicJwk: JWK): Promise<AssertionSigningKey> {
    const plaintext = this.#sealer.open(row.private_enc);
    if (plaintext === undefined) {
      throw invalid(
        row.kid,
        'its private key does not decrypt: every replica must use the same session key (session.secret_file), or the row is corrupted',
      );
    }
    let sealed: z.infer<typeof sealedPrivate>;
    try {
      sealed = sealedPrivate.parse(JSON.parse(plaintext));
    } catch {
      // No cause: it would carry the decrypted text.
      throw invalid(row.kid, 'its decrypted private key is malformed');
    }
    if (sealed.kid !== row.kid) throw invalid(row.kid, 'its sealed private key belongs to another key');
    const { kty, crv, x, y } = publicJwk;
    try {
      const privateKey = (await importJWK({ kty, crv, x, y, d: sealed.d }, 'ES256')) as CryptoKey;
      const jws = await new CompactSign(SELF_CHECK_PAYLOAD)
        .setProtectedHeader({ alg: 'ES256' })
        .sign(privateKey);
      await compactVerify(jws, await importJWK(publicJwk, 'ES256'));
      return { kid: row.kid, privateKey, publicJwk };
    } catch {
      throw invalid(row.kid, 'its private key does not match its public key');
    }
  }
}

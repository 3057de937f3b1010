import {
  createPrivateKey,
  KeyObject,
  X509Certificate as NodeX509Certificate,
  randomBytes,
} from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { VigilError } from '../errors.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import { readSecretFile } from '../internal/secrets.ts';
import type { CaAuthoritiesTable, Store } from '../store/index.ts';
import type { CsrPolicy } from './csr.ts';
import {
  createIntermediateCertificate,
  createRootCertificate,
  generateCaKeys,
  isCaCertificate,
  selfCheck,
} from './lib/certificates.ts';
import type { CaSealingKey } from './lib/seal.ts';
import type { Key } from './lib/x509.ts';
import {
  algorithmName,
  type CaKeyAlgorithm,
  fingerprintOf,
  importParamsOf,
  normalizeSerial,
  parseCertificates,
  pemOf,
  SERIAL_PATTERN,
  signingAlgorithmOf,
  subtle,
  x509,
} from './lib/x509.ts';
import {
  type DeviceCertificateParams,
  type LeafSigner,
  type SignedLeaf,
  signDeviceCertificate,
  signWorkloadCertificate,
  type WorkloadCertificateParams,
} from './sign.ts';
import { isTrustDomain, parseSpiffeId } from './spiffe.ts';

export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 86_400_000;
export const DEFAULT_INTERMEDIATE_TTL_MS = 365 * 86_400_000;
/** A CRL is good for a day and re-signed when half of that has passed or on revocation. */
export const CRL_VALIDITY_MS = 86_400_000;

export type AuthorityKind = 'root' | 'intermediate';
export type AuthoritySlot = 'current' | 'next' | 'retired';

/** Revocation reasons (RFC 5280 §5.3.1), kebab-case as the CLI and API take them. */
export const REVOCATION_REASONS = {
  unspecified: x509.X509CrlReason.unspecified,
  'key-compromise': x509.X509CrlReason.keyCompromise,
  'affiliation-changed': x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  'cessation-of-operation': x509.X509CrlReason.cessationOfOperation,
  'privilege-withdrawn': x509.X509CrlReason.privilegeWithdrawn,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

/** One root or intermediate as status output and the bundle see it. */
export interface AuthorityInfo {
  id: string;
  kind: AuthorityKind;
  slot: AuthoritySlot;
  algorithm: string;
  subject: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** For a retired intermediate: when it leaves the bundle. */
  bundleUntil: Date | null;
  /** Whether the store holds its (sealed) private key. */
  keyInStore: boolean;
}

interface Authority extends AuthorityInfo {
  cert: x509.X509Certificate;
  nodeCert: NodeX509Certificate;
  pem: string;
  keyEnc: string | null;
}

/** A leaf as handed to its holder: the certificate, its chain and when to renew. */
export interface IssuedCertificate extends SignedLeaf {
  /** ca_authorities.id of the intermediate that signed it. */
  issuerId: string;
  /** Leaf then intermediate, PEM: what a TLS peer presents. */
  chainPem: string;
}

export interface CertificateAuthorityOptions {
  store: Store;
  /** Opens the sealed private keys; see loadCaSealingKey. */
  sealingKey: CaSealingKey;
  clock?: Clock;
  csrPolicy?: CsrPolicy;
  /** Leaf lifetimes when a call names none (config `ca.device_ttl`, `ca.workload_ttl`); 24 h and 1 h by default. */
  defaultTtlMs?: { device?: number; workload?: number };
  /**
   * Told when following the change feed fails (a reload after a rotation elsewhere that
   * does not pass the self-check); the CA keeps serving its last good state.
   */
  onError?: (error: unknown) => void;
}

export interface InitializeOptions extends CertificateAuthorityOptions {
  trustDomain: string;
  algorithm?: CaKeyAlgorithm;
  rootTtlMs?: number;
  intermediateTtlMs?: number;
  /**
   * Write the root's sealed key to this file (mode 0600) instead of the store, so that
   * servers never hold it; `prepareNext({ rootKeyFile })` reads it back.
   */
  rootKeyFile?: string;
}

export interface ImportOptions extends CertificateAuthorityOptions {
  trustDomain: string;
  /** The intermediate certificate followed by its root (PEM). */
  certPem: string;
  /** The intermediate's PKCS#8 private key (PEM, unencrypted). */
  keyPem: string;
}

/** What a client certificate turned out to be, for the proxy's per-request check. */
export type PeerCertificateCheck =
  | { ok: true; kind: 'device' | 'workload'; id: string; spiffeId: string; serial: string; notAfter: Date }
  | { ok: false; reason: 'cert-untrusted' | 'cert-expired' | 'cert-revoked' | 'cert-not-svid' };

interface CaState {
  trustDomain: string;
  authorities: Authority[];
  current: Authority;
  /** Private keys of the intermediates that still sign (leaves or CRLs). */
  keys: Map<string, SigningKeys>;
}

interface CachedCrl {
  crl: x509.X509Crl;
  thisUpdate: number;
}

const newId = () => randomBytes(8).toString('hex');

/**
 * The internal CA: issues short-lived device and workload certificates from an online
 * intermediate, keeps the trust bundle, rotates intermediates through current/next
 * slots, and publishes revocations (CRL, change feed, in-memory set for the proxy).
 *
 * @example
 * const ca = await CertificateAuthority.open({ store, sealingKey: loadCaSealingKey(file) });
 * const cert = await ca.signDeviceCertificate({ csr, deviceId: 'd-42' });
 */
export class CertificateAuthority {
  readonly #store: Store;
  readonly #sealingKey: CaSealingKey;
  readonly #clock: Clock;
  readonly #csrPolicy: CsrPolicy | undefined;
  readonly #defaultTtlMs: { device?: number; workload?: number };
  #state: CaState;
  #leafSigner: LeafSigner | undefined;
  readonly #revoked = new Set<string>();
  readonly #crls = new Map<string, CachedCrl>();
  readonly #unsubscribe: (() => void)[] = [];

  private constructor(options: CertificateAuthorityOptions, state: CaState) {
    this.#store = options.store;
    this.#sealingKey = options.sealingKey;
    this.#clock = options.clock ?? systemClock;
    this.#csrPolicy = options.csrPolicy;
    this.#defaultTtlMs = { ...options.defaultTtlMs };
    this.#state = state;
  }

  /** Loads the CA from the store, self-checks it, and follows revocations and rotations. */
  static async open(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const clock = options.clock ?? systemClock;
    const state = await loadState(options.store, options.sealingKey, clock);
    const ca = new CertificateAuthority(options, state);
    await ca.#reloadRevocations();
    const changes = options.store.changes;
    const report = options.onError ?? (() => {});
    ca.#unsubscribe.push(
      changes.subscribe('revocation', (event) => {
        if (event.action !== 'revoked' || event.id === undefined) return;
        const serial = normalizeSerial(event.id);
        // A serial already known was revoked here (its CRL is fresh) or heard of before.
        if (!SERIAL_PATTERN.test(serial) || ca.#revoked.has(serial)) return;
        ca.#revoked.add(serial);
        ca.#crls.clear();
      }),
      changes.subscribe('key', (event) => {
        // Our own rotations already reloaded; other replicas' ones arrive here.
        if (event.action === 'ca-rotated' && event.origin !== changes.origin) ca.reload().catch(report);
      }),
      changes.onResync(() => {
        ca.#reloadRevocations().catch(report);
        ca.reload().catch(report);
      }),
    );
    return ca;
  }

  /** Creates a root and an online intermediate in an empty store, then opens the CA. */
  static async initialize(options: InitializeOptions): Promise<CertificateAuthority> {
    const clock = options.clock ?? systemClock;
    if (!isTrustDomain(options.trustDomain)) {
      throw new VigilError(
        'ERR_CA_SPIFFE_ID_INVALID',
        `"${options.trustDomain}" is not a valid trust domain (lowercase DNS name)`,
      );
    }
    await refuseIfInitialized(options.store);
    const algorithm = options.algorithm ?? 'ecdsa-p256';
    const rootId = newId();
    const rootKeys = await generateCaKeys(algorithm);
    const root = await createRootCertificate({
      id: rootId,
      trustDomain: options.trustDomain,
      keys: rootKeys,
      clock,
      ttlMs: options.rootTtlMs ?? DEFAULT_ROOT_TTL_MS,
    });
    const intermediate = await mintIntermediate({
      trustDomain: options.trustDomain,
      algorithm,
      root,
      rootKey: rootKeys.privateKey,
      clock,
      ttlMs: options.intermediateTtlMs ?? DEFAULT_INTERMEDIATE_TTL_MS,
      sealingKey: options.sealingKey,
    });
    await selfCheck({
      id: intermediate.id,
      intermediate: intermediate.cert,
      key: intermediate.key,
      roots: [root],
      clock,
      trustDomain: options.trustDomain,
    });
    const rootSealed = options.sealingKey.seal(await exportPkcs8(rootKeys.privateKey), rootId);
    if (options.rootKeyFile !== undefined) writeRootKeyFile(options.rootKeyFile, rootSealed);
    const now = clock.now();
    await options.store.db
      .insertInto('ca_authorities')
      .values([
        authorityRow(
          rootId,
          'root',
          'current',
          options.trustDomain,
          root,
          options.rootKeyFile === undefined ? rootSealed : null,
          now,
        ),
        authorityRow(
          intermediate.id,
          'intermediate',
          'current',
          options.trustDomain,
          intermediate.cert,
          intermediate.keyEnc,
          now,
        ),
      ])
      .execute();
    return CertificateAuthority.open(options);
  }

  /**
   * Imports an intermediate issued by an upstream CA (with its root). Into the current
   * slot of an empty store, or the next slot of an initialized one (then `activateNext`).
   */
  static async importIntermediate(options: ImportOptions): Promise<CertificateAuthority> {
    const clock = options.clock ?? systemClock;
    const invalid = (why: string, cause?: unknown) =>
      new VigilError('ERR_CA_IMPORT_INVALID', `cannot import the intermediate: ${why}`, { cause });
    if (!isTrustDomain(options.trustDomain))
      throw invalid(`"${options.trustDomain}" is not a valid trust domain`);
    let certs: x509.X509Certificate[];
    try {
      certs = parseCertificates(options.certPem);
    } catch (error) {
      throw invalid('--cert is not PEM certificates', error);
    }
    const [intermediate, root, ...rest] = certs;
    if (!intermediate || !root)
      throw invalid('--cert must hold the intermediate followed by its root certificate');
    if (rest.length > 0) throw invalid('chains deeper than root + intermediate are not supported');
    if (!isCaCertificate(intermediate)) throw invalid('the first certificate is not a CA certificate');
    if (!(await root.isSelfSigned())) throw invalid('the last certificate is not a self-signed root');
    let keys: SigningKeys;
    let pkcs8: Uint8Array;
    try {
      pkcs8 = new Uint8Array(x509.PemConverter.decodeFirst(options.keyPem));
      keys = await signingKeys(pkcs8, intermediate);
    } catch (error) {
      throw invalid('--key is not a PKCS#8 private key for the certificate', error);
    }
    const id = newId();
    const existing = await options.store.db.selectFrom('ca_authorities').selectAll().execute();
    const trustDomain = existing[0]?.trust_domain ?? options.trustDomain;
    await selfCheck({ id, intermediate, key: keys.node, roots: [root], clock, trustDomain });
    if (existing.some((row) => row.kind === 'intermediate' && row.slot === 'next')) {
      throw new VigilError('ERR_CA_ROTATION', 'a next intermediate is already prepared; activate it first');
    }
    const slot: AuthoritySlot = existing.some((row) => row.kind === 'intermediate' && row.slot === 'current')
      ? 'next'
      : 'current';
    const now = clock.now();
    const rootFingerprint = fingerprintOf(root);
    const rows = [
      authorityRow(
        id,
        'intermediate',
        slot,
        trustDomain,
        intermediate,
        options.sealingKey.seal(pkcs8, id),
        now,
      ),
    ];
    if (!existing.some((row) => row.fingerprint === rootFingerprint)) {
      rows.push(authorityRow(newId(), 'root', 'current', trustDomain, root, null, now));
    }
    await options.store.db.insertInto('ca_authorities').values(rows).execute();
    const ca = await CertificateAuthority.open(options);
    await ca.#announceRotation();
    return ca;
  }

  get trustDomain(): string {
    return this.#state.trustDomain;
  }

  /** Roots and intermediates, with slots; the private keys never leave. */
  authorities(): AuthorityInfo[] {
    return this.#state.authorities.map(toInfo);
  }

  /** Signs a device certificate and records it; see signDeviceCertificate for the checks. */
  async signDeviceCertificate(params: DeviceCertificateParams): Promise<IssuedCertificate> {
    const ttlMs = params.ttlMs ?? this.#defaultTtlMs.device;
    return this.#record(
      signDeviceCertificate(this.#signer(), ttlMs === undefined ? params : { ...params, ttlMs }),
    );
  }

  /** Signs a workload X.509-SVID and records it; see signWorkloadCertificate for the checks. */
  async signWorkloadCertificate(params: WorkloadCertificateParams): Promise<IssuedCertificate> {
    const ttlMs = params.ttlMs ?? this.#defaultTtlMs.workload;
    return this.#record(
      signWorkloadCertificate(this.#signer(), ttlMs === undefined ? params : { ...params, ttlMs }),
    );
  }

  /** Roots, then current, next and still-needed retired intermediates, PEM. */
  bundlePem(): string {
    return this.#bundle()
      .map((authority) => authority.pem)
      .join('');
  }

  /** The bundle as a JWKS (SPIFFE bundle form): one key per certificate with its x5c. */
  async bundleJwks(): Promise<{ keys: Record<string, unknown>[] }> {
    return jwksOf(this.#bundle());
  }

  /**
   * Checks a client certificate the TLS layer already accepted: issued by an
   * intermediate of the bundle, within its validity, not revoked, and one SPIFFE ID of
   * this trust domain. The proxy calls it per request; it costs one signature check.
   */
  checkPeerCertificate(raw: Uint8Array | string): PeerCertificateCheck {
    let leaf: NodeX509Certificate;
    try {
      leaf = new NodeX509Certificate(raw);
    } catch {
      return { ok: false, reason: 'cert-untrusted' };
    }
    const issuer = this.#bundle().find(
      (authority) =>
        authority.kind === 'intermediate' &&
        leaf.checkIssued(authority.nodeCert) &&
        leaf.verify(authority.nodeCert.publicKey),
    );
    if (!issuer || leaf.ca) return { ok: false, reason: 'cert-untrusted' };
    const now = this.#clock.now();
    if (Date.parse(leaf.validFrom) > now || Date.parse(leaf.validTo) <= now)
      return { ok: false, reason: 'cert-expired' };
    const serial = normalizeSerial(leaf.serialNumber);
    if (this.#revoked.has(serial)) return { ok: false, reason: 'cert-revoked' };
    const names = (leaf.subjectAltName ?? '').split(', ');
    const uri = names.length === 1 && names[0]?.startsWith('URI:') ? names[0].slice(4) : undefined;
    const spiffeId = uri === undefined ? undefined : parseSpiffeId(uri);
    if (!spiffeId || spiffeId.trustDomain !== this.#state.trustDomain || uri === undefined) {
      return { ok: false, reason: 'cert-not-svid' };
    }
    const device = /^\/device\/([^/]+)$/.exec(spiffeId.path);
    return {
      ok: true,
      kind: device ? 'device' : 'workload',
      id: device?.[1] ?? spiffeId.path,
      spiffeId: uri,
      serial,
      notAfter: new Date(leaf.validTo),
    };
  }

  /** True when `serial` (any case, with or without colons) was revoked; memory only. */
  isRevoked(serial: string): boolean {
    return this.#revoked.has(normalizeSerial(serial));
  }

  /** Revokes a certificate: store, CRL, change feed (other replicas learn within seconds). */
  async revoke(
    serialText: string,
    reason: string = 'unspecified',
  ): Promise<{ serial: string; revokedAt: Date; reason: RevocationReason }> {
    const serial = normalizeSerial(serialText);
    if (!Object.hasOwn(REVOCATION_REASONS, reason)) {
      throw new VigilError(
        'ERR_CA_REVOKE_REASON',
        `unknown revocation reason "${reason.slice(0, 40)}"; one of ${Object.keys(REVOCATION_REASONS).join(', ')}`,
        {
          status: 400,
          publicMessage: 'unknown revocation reason',
        },
      );
    }
    const row = SERIAL_PATTERN.test(serial)
      ? await this.#store.db
          .selectFrom('ca_certificates')
          .selectAll()
          .where('serial', '=', serial)
          .executeTakeFirst()
      : undefined;
    if (!row) {
      throw new VigilError(
        'ERR_CA_CERT_NOT_FOUND',
        `no certificate with serial ${serial.slice(0, 40)} was issued by this CA`,
        {
          status: 404,
          publicMessage: 'certificate not found',
        },
      );
    }
    if (row.revoked_at !== null) {
      return { serial, revokedAt: new Date(row.revoked_at), reason: row.revoked_reason as RevocationReason };
    }
    const now = this.#clock.now();
    await this.#store.db
      .updateTable('ca_certificates')
      .set({ revoked_at: now, revoked_reason: reason })
      .where('serial', '=', serial)
      .where('revoked_at', 'is', null)
      .execute();
    this.#revoked.add(serial);
    // Re-signed now rather than on the next read, so a CRL fetched right after lists it.
    if (this.#state.keys.has(row.issuer_id))
      this.#crls.set(row.issuer_id, await this.#signCrl(row.issuer_id, now));
    else this.#crls.delete(row.issuer_id);
    await this.#store.changes.publish({ channel: 'revocation', action: 'revoked', id: serial });
    return { serial, revokedAt: new Date(now), reason: reason as RevocationReason };
  }

  /**
   * The CRL of an intermediate (the current one by default), signed by it, listing its
   * revoked leaves that have not expired. Re-signed after a revocation or half its validity.
   */
  async crl(
    issuerId: string = this.#state.current.id,
  ): Promise<{ pem: string; der: Uint8Array; thisUpdate: Date; nextUpdate: Date; entries: number }> {
    const now = this.#clock.now();
    let cached = this.#crls.get(issuerId);
    if (!cached || now - cached.thisUpdate > CRL_VALIDITY_MS / 2 || now < cached.thisUpdate) {
      cached = await this.#signCrl(issuerId, now);
      this.#crls.set(issuerId, cached);
    }
    const { crl } = cached;
    return {
      // RFC 7468 labels a CRL "X509 CRL" (what OpenSSL reads); the library writes "CRL".
      pem: pemOf(crl.rawData, 'X509 CRL'),
      der: new Uint8Array(crl.rawData),
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate ?? new Date(cached.thisUpdate + CRL_VALIDITY_MS),
      entries: crl.entries.length,
    };
  }

  /**
   * Mints a new intermediate into the next slot. It is in the bundle at once, so peers
   * trust it before it signs anything. Needs the root key: from the store, or from
   * `rootKeyFile` when the root is kept offline.
   */
  async prepareNext(options: { rootKeyFile?: string; ttlMs?: number } = {}): Promise<AuthorityInfo> {
    const state = this.#state;
    if (
      state.authorities.some((authority) => authority.kind === 'intermediate' && authority.slot === 'next')
    ) {
      throw new VigilError(
        'ERR_CA_ROTATION',
        'a next intermediate is already prepared; run `vigil ca rotate activate` first',
      );
    }
    const root = state.authorities.find(
      (authority) =>
        authority.kind === 'root' &&
        authority.slot === 'current' &&
        authority.cert.subject === state.current.cert.issuer,
    );
    if (!root)
      throw new VigilError('ERR_CA_ROTATION', 'the root of the current intermediate is not in the store');
    let sealed = root.keyEnc;
    if (options.rootKeyFile !== undefined) sealed = readRootKeyFile(options.rootKeyFile);
    if (sealed === null) {
      throw new VigilError(
        'ERR_CA_ROTATION',
        'the root key is not in the store: pass --root-key-file, or import an intermediate from the upstream CA',
      );
    }
    const rootKey = await subtle.importKey(
      'pkcs8',
      this.#sealingKey.open(sealed, root.id),
      importParamsOf(root.cert.publicKey),
      false,
      ['sign'],
    );
    const algorithm: CaKeyAlgorithm = state.current.algorithm === 'ed25519' ? 'ed25519' : 'ecdsa-p256';
    const minted = await mintIntermediate({
      trustDomain: state.trustDomain,
      algorithm,
      root: root.cert,
      rootKey,
      clock: this.#clock,
      ttlMs: options.ttlMs ?? DEFAULT_INTERMEDIATE_TTL_MS,
      sealingKey: this.#sealingKey,
    });
    await selfCheck({
      id: minted.id,
      intermediate: minted.cert,
      key: minted.key,
      roots: [root.cert],
      clock: this.#clock,
      trustDomain: state.trustDomain,
    });
    await this.#store.db
      .insertInto('ca_authorities')
      .values(
        authorityRow(
          minted.id,
          'intermediate',
          'next',
          state.trustDomain,
          minted.cert,
          minted.keyEnc,
          this.#clock.now(),
        ),
      )
      .execute();
    await this.reload();
    await this.#announceRotation();
    const info = this.authorities().find((authority) => authority.id === minted.id);
    if (!info) throw new VigilError('ERR_CA_ROTATION', 'the prepared intermediate did not load');
    return info;
  }

  /**
   * Makes the next intermediate current. The old one is retired but stays in the bundle
   * (and keeps signing its CRL) until the last leaf it signed expires.
   */
  async activateNext(): Promise<AuthorityInfo> {
    const state = this.#state;
    const next = state.authorities.find(
      (authority) => authority.kind === 'intermediate' && authority.slot === 'next',
    );
    if (!next)
      throw new VigilError('ERR_CA_ROTATION', 'no next intermediate: run `vigil ca rotate prepare` first');
    const old = state.current;
    const now = this.#clock.now();
    await this.#store.db.transaction().execute(async (trx) => {
      const last = await trx
        .selectFrom('ca_certificates')
        .select((eb) => eb.fn.max('not_after').as('until'))
        .where('issuer_id', '=', old.id)
        .executeTakeFirst();
      const until = Math.max(Number(last?.until ?? 0), now);
      await trx
        .updateTable('ca_authorities')
        .set({ slot: 'retired', bundle_until: until, updated_at: now })
        .where('id', '=', old.id)
        .execute();
      await trx
        .updateTable('ca_authorities')
        .set({ slot: 'current', updated_at: now })
        .where('id', '=', next.id)
        .execute();
    });
    await this.reload();
    await this.#announceRotation();
    return toInfo(this.#state.current);
  }

  /** Re-reads roots and intermediates from the store (after a rotation elsewhere) and self-checks them. */
  async reload(): Promise<void> {
    this.#state = await loadState(this.#store, this.#sealingKey, this.#clock);
    this.#crls.clear();
  }

  /** Stops following the change feed; the store stays open (its owner closes it). */
  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  #signer(): LeafSigner {
    const current = this.#state.current;
    // One object per intermediate, so that what the signing path derives from it is cached.
    if (this.#leafSigner?.id === current.id) return this.#leafSigner;
    const key = this.#state.keys.get(current.id);
    if (!key) throw new VigilError('ERR_CA_NOT_INITIALIZED', 'the current intermediate has no key loaded');
    this.#leafSigner = {
      id: current.id,
      cert: current.cert,
      key: key.node,
      trustDomain: this.#state.trustDomain,
      clock: this.#clock,
      ...(this.#csrPolicy ? { csrPolicy: this.#csrPolicy } : {}),
    };
    return this.#leafSigner;
  }

  async #record(leaf: SignedLeaf): Promise<IssuedCertificate> {
    const issuer = this.#state.current;
    await this.#store.db
      .insertInto('ca_certificates')
      .values({
        serial: leaf.serial,
        kind: leaf.kind,
        subject: leaf.subject,
        spiffe_id: leaf.spiffeId,
        issuer_id: issuer.id,
        not_before: leaf.notBefore.getTime(),
        not_after: leaf.notAfter.getTime(),
        issued_at: this.#clock.now(),
        revoked_at: null,
        revoked_reason: null,
      })
      .execute();
    return { ...leaf, issuerId: issuer.id, chainPem: `${leaf.pem}${issuer.pem}` };
  }

  #bundle(): Authority[] {
    return bundleOf(this.#state.authorities, this.#clock.now());
  }

  async #reloadRevocations(): Promise<void> {
    const rows = await this.#store.db
      .selectFrom('ca_certificates')
      .select('serial')
      .where('revoked_at', 'is not', null)
      .where('not_after', '>', this.#clock.now())
      .execute();
    for (const row of rows) this.#revoked.add(row.serial);
    this.#crls.clear();
  }

  async #signCrl(issuerId: string, now: number): Promise<CachedCrl> {
    const issuer = this.#state.authorities.find(
      (authority) => authority.id === issuerId && authority.kind === 'intermediate',
    );
    const key = this.#state.keys.get(issuerId);
    if (!issuer || !key) {
      throw new VigilError(
        'ERR_CA_CERT_NOT_FOUND',
        `no intermediate ${issuerId.slice(0, 40)} signs CRLs here`,
        {
          status: 404,
          publicMessage: 'CRL issuer not found',
        },
      );
    }
    const rows = await this.#store.db
      .selectFrom('ca_certificates')
      .select(['serial', 'revoked_at', 'revoked_reason'])
      .where('issuer_id', '=', issuerId)
      .where('revoked_at', 'is not', null)
      .where('not_after', '>', now)
      .orderBy('revoked_at')
      .execute();
    const keyId = issuer.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    // Whole seconds, like every X.509 time, so that thisUpdate reads back equal.
    const thisUpdate = Math.floor(now / 1000) * 1000;
    const crl = await x509.X509CrlGenerator.create({
      issuer: issuer.cert.subjectName,
      thisUpdate: new Date(thisUpdate),
      nextUpdate: new Date(thisUpdate + CRL_VALIDITY_MS),
      signingKey: key.crypto,
      signingAlgorithm: signingAlgorithmOf(key.crypto),
      extensions: keyId ? [new x509.AuthorityKeyIdentifierExtension(keyId)] : [],
      entries: rows.map((row) => ({
        serialNumber: row.serial.length % 2 === 0 ? row.serial : `0${row.serial}`,
        revocationDate: new Date(row.revoked_at ?? now),
        reason:
          REVOCATION_REASONS[(row.revoked_reason ?? 'unspecified') as RevocationReason] ??
          x509.X509CrlReason.unspecified,
      })),
    });
    return { crl, thisUpdate };
  }

  async #announceRotation(): Promise<void> {
    await this.#store.changes.publish({ channel: 'key', action: 'ca-rotated', id: 'ca' });
  }
}

function inBundle(authority: Authority, now: number): boolean {
  if (authority.notAfter.getTime() <= now) return false;
  if (authority.slot !== 'retired') return true;
  return authority.bundleUntil !== null && authority.bundleUntil.getTime() > now;
}

function toInfo(authority: Authority): AuthorityInfo {
  const { cert: _cert, nodeCert: _nodeCert, pem: _pem, keyEnc: _keyEnc, ...info } = authority;
  return info;
}

async function refuseIfInitialized(store: Store): Promise<void> {
  const any = await store.db.selectFrom('ca_authorities').select('id').limit(1).executeTakeFirst();
  if (any) {
    throw new VigilError(
      'ERR_CA_ALREADY_INITIALIZED',
      'the CA is already initialized in this database; use `vigil ca rotate` to replace the intermediate',
    );
  }
}

async function exportPkcs8(key: Key): Promise<Uint8Array> {
  return new Uint8Array(await subtle.exportKey('pkcs8', key));
}

/** The sealed root key file, held to the same 0600 rule as the CA key file. */
function readRootKeyFile(path: string): string {
  const read = readSecretFile(path);
  if ('problem' in read) {
    const why =
      read.problem === 'too-open' ? 'is readable by group or others; run chmod 600' : `is ${read.problem}`;
    throw new VigilError('ERR_CA_KEY_FILE', `root key file ${path} ${why}`);
  }
  return read.value;
}

function writeRootKeyFile(path: string, sealed: string): void {
  try {
    writeFileSync(path, `${sealed}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    throw new VigilError(
      'ERR_CA_KEY_FILE',
      `cannot write the root key file ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

async function mintIntermediate(options: {
  trustDomain: string;
  algorithm: CaKeyAlgorithm;
  root: x509.X509Certificate;
  rootKey: Key;
  clock: Clock;
  ttlMs: number;
  sealingKey: CaSealingKey;
}): Promise<{ id: string; cert: x509.X509Certificate; key: KeyObject; keyEnc: string }> {
  const id = newId();
  const keys = await generateCaKeys(options.algorithm);
  const cert = await createIntermediateCertificate({ ...options, id, publicKey: keys.publicKey });
  const keyEnc = options.sealingKey.seal(await exportPkcs8(keys.privateKey), id);
  return { id, cert, key: KeyObject.from(keys.privateKey), keyEnc };
}

/** An intermediate's key twice: WebCrypto for @peculiar's CRL generator, node:crypto for leaves. */
interface SigningKeys {
  crypto: Key;
  node: KeyObject;
}

async function signingKeys(pkcs8: Uint8Array, cert: x509.X509Certificate): Promise<SigningKeys> {
  return {
    crypto: await subtle.importKey('pkcs8', pkcs8, importParamsOf(cert.publicKey), false, ['sign']),
    node: createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }),
  };
}

function authorityRow(
  id: string,
  kind: AuthorityKind,
  slot: AuthoritySlot,
  trustDomain: string,
  cert: x509.X509Certificate,
  keyEnc: string | null,
  now: number,
): CaAuthoritiesTable {
  return {
    id,
    kind,
    slot,
    trust_domain: trustDomain,
    algorithm: algorithmName(cert.publicKey),
    cert_pem: `${cert.toString('pem')}\n`,
    key_enc: keyEnc,
    fingerprint: fingerprintOf(cert),
    not_before: cert.notBefore.getTime(),
    not_after: cert.notAfter.getTime(),
    bundle_until: null,
    created_at: now,
    updated_at: now,
  };
}

function parseAuthorityRow(row: CaAuthoritiesTable): Authority {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(row.cert_pem);
  } catch (error) {
    throw new VigilError(
      'ERR_CA_SELF_CHECK',
      `stored certificate of CA ${row.id} does not parse; refusing to start`,
      { cause: error },
    );
  }
  return {
    id: row.id,
    kind: row.kind as AuthorityKind,
    slot: row.slot as AuthoritySlot,
    algorithm: row.algorithm,
    subject: cert.subject,
    fingerprint: row.fingerprint,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    bundleUntil: row.bundle_until === null ? null : new Date(Number(row.bundle_until)),
    keyInStore: row.key_enc !== null,
    cert,
    nodeCert: new NodeX509Certificate(new Uint8Array(cert.rawData)),
    // The library's PEM has no final newline; concatenated bundles need one.
    pem: `${cert.toString('pem').trimEnd()}\n`,
    keyEnc: row.key_enc,
  };
}

function bundleOf(authorities: readonly Authority[], now: number): Authority[] {
  const order = { root: 0, intermediate: 1 } as const;
  const slotOrder = { current: 0, next: 1, retired: 2 } as const;
  return authorities
    .filter((authority) => inBundle(authority, now))
    .sort((a, b) => order[a.kind] - order[b.kind] || slotOrder[a.slot] - slotOrder[b.slot]);
}

async function jwksOf(authorities: readonly Authority[]): Promise<{ keys: Record<string, unknown>[] }> {
  const keys: Record<string, unknown>[] = [];
  for (const authority of authorities) {
    const publicKey = await authority.cert.publicKey.export();
    const jwk = (await subtle.exportKey('jwk', publicKey)) as Record<string, unknown>;
    keys.push({
      ...jwk,
      kid: authority.fingerprint.slice(0, 32),
      use: 'x509-svid',
      x5c: [Buffer.from(authority.cert.rawData).toString('base64')],
    });
  }
  return { keys };
}

/**
 * The public half of the CA, read without any private key: for `vigil ca bundle` and
 * `vigil ca status`, and for processes that only verify.
 */
export async function readTrustBundle(
  store: Store,
  clock: Clock = systemClock,
): Promise<{
  trustDomain: string;
  pem: string;
  jwks(): Promise<{ keys: Record<string, unknown>[] }>;
  authorities: AuthorityInfo[];
}> {
  const rows = await store.db.selectFrom('ca_authorities').selectAll().execute();
  if (rows.length === 0) {
    throw new VigilError(
      'ERR_CA_NOT_INITIALIZED',
      'the CA is not initialized: run `vigil ca init` or `vigil ca import`',
    );
  }
  const authorities = rows.map(parseAuthorityRow);
  const bundle = bundleOf(authorities, clock.now());
  return {
    trustDomain: rows[0]?.trust_domain ?? '',
    pem: bundle.map((authority) => authority.pem).join(''),
    jwks: () => jwksOf(bundle),
    authorities: authorities.map(toInfo),
  };
}

/** Reads every authority; opens the keys of intermediates that still sign; self-checks current and next. */
async function loadState(store: Store, sealingKey: CaSealingKey, clock: Clock): Promise<CaState> {
  const rows = await store.db.selectFrom('ca_authorities').selectAll().execute();
  const current = rows.filter((row) => row.kind === 'intermediate' && row.slot === 'current');
  if (current.length === 0) {
    throw new VigilError(
      'ERR_CA_NOT_INITIALIZED',
      'the CA is not initialized: run `vigil ca init` or `vigil ca import`',
      {
        status: 503,
        publicMessage: 'certificate authority unavailable',
      },
    );
  }
  if (current.length > 1) {
    throw new VigilError(
      'ERR_CA_SELF_CHECK',
      'more than one current intermediate in the store; refusing to start',
    );
  }
  const authorities = rows.map(parseAuthorityRow);
  const roots = authorities
    .filter((authority) => authority.kind === 'root' && authority.slot !== 'retired')
    .map((authority) => authority.cert);
  const now = clock.now();
  const keys = new Map<string, SigningKeys>();
  for (const authority of authorities) {
    if (authority.kind !== 'intermediate' || !inBundle(authority, now) || authority.keyEnc === null) continue;
    const pkcs8 = sealingKey.open(authority.keyEnc, authority.id);
    let key: SigningKeys;
    try {
      key = await signingKeys(pkcs8, authority.cert);
    } catch (error) {
      throw new VigilError(
        'ERR_CA_SELF_CHECK',
        `private key of CA ${authority.id} does not import; refusing to start`,
        { cause: error },
      );
    }
    if (authority.slot !== 'retired') {
      const trustDomain = rows[0]?.trust_domain ?? '';
      await selfCheck({
        id: authority.id,
        intermediate: authority.cert,
        key: key.node,
        roots,
        clock,
        trustDomain,
      });
    }
    keys.set(authority.id, key);
  }
  const currentAuthority = authorities.find((authority) => authority.id === current[0]?.id);
  if (!currentAuthority || !keys.has(currentAuthority.id)) {
    throw new VigilError(
      'ERR_CA_SELF_CHECK',
      'the current intermediate has no usable private key; refusing to start',
    );
  }
  return { trustDomain: rows[0]?.trust_domain ?? '', authorities, current: currentAuthority, keys };
}

import type { Kysely, Migration, MigrationProvider } from 'kysely';

/**
 * Every schema change, in order. Names sort lexically; a released migration is never
 * edited, only followed by a new one. DDL uses types both dialects read the same way.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('idp', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('email', 'text')
        .addColumn('name', 'text')
        .addColumn('groups_json', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('first_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('users_email').on('users').column('email').execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('idp', 'text', (c) => c.notNull())
        .addColumn('groups_json', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('amr_json', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('claims_json', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('device_id', 'text')
        .addColumn('auth_time', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('revoked_reason', 'text')
        .addColumn('refresh_token_enc', 'text')
        .execute();
      await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
      await db.schema.createIndex('sessions_device').on('sessions').column('device_id').execute();
      await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();

      await db.schema
        .createTable('devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('serial', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('cert_serial', 'text')
        .addColumn('cert_not_after', 'bigint')
        .addColumn('enrolled_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('devices_user').on('devices').column('user_id').execute();
      await db.schema.createIndex('devices_serial').on('devices').column('serial').execute();

      await db.schema
        .createTable('posture_reports')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('reported_at', 'bigint', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addColumn('data_json', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('posture_reports_device_time')
        .on('posture_reports')
        .columns(['device_id', 'received_at'])
        .execute();

      await db.schema
        .createTable('policy_versions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .execute();
      await db.schema
        .createIndex('policy_versions_name_time')
        .on('policy_versions')
        .columns(['name', 'created_at'])
        .execute();

      await db.schema
        .createTable('audit_events')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('data_json', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_events_time').on('audit_events').column('time').execute();

      await db.schema
        .createTable('audit_checkpoints')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('signature', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('algorithm', 'text', (c) => c.notNull())
        .addColumn('public_jwk_json', 'text', (c) => c.notNull())
        .addColumn('private_enc', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('not_after', 'bigint')
        .addColumn('state', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('signing_keys_purpose').on('signing_keys').column('purpose').execute();
    },
  },
  '0002_ca': {
    async up(db: Kysely<unknown>) {
      // Root and intermediates of the internal CA. key_enc is AES-256-GCM sealed PKCS#8,
      // null for a root kept offline or an upstream root we only hold the certificate of.
      await db.schema
        .createTable('ca_authorities')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('slot', 'text', (c) => c.notNull())
        .addColumn('trust_domain', 'text', (c) => c.notNull())
        .addColumn('algorithm', 'text', (c) => c.notNull())
        .addColumn('cert_pem', 'text', (c) => c.notNull())
        .addColumn('key_enc', 'text')
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('not_before', 'bigint', (c) => c.notNull())
        .addColumn('not_after', 'bigint', (c) => c.notNull())
        .addColumn('bundle_until', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('ca_authorities_slot')
        .on('ca_authorities')
        .columns(['kind', 'slot'])
        .execute();

      await db.schema
        .createTable('ca_certificates')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('spiffe_id', 'text', (c) => c.notNull())
        .addColumn('issuer_id', 'text', (c) => c.notNull())
        .addColumn('not_before', 'bigint', (c) => c.notNull())
        .addColumn('not_after', 'bigint', (c) => c.notNull())
        .addColumn('issued_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('revoked_reason', 'text')
        .execute();
      await db.schema
        .createIndex('ca_certificates_issuer_revoked')
        .on('ca_certificates')
        .columns(['issuer_id', 'revoked_at'])
        .execute();
      await db.schema
        .createIndex('ca_certificates_spiffe_id')
        .on('ca_certificates')
        .column('spiffe_id')
        .execute();
    },
  },
  '0003_devices': {
    async up(db: Kysely<unknown>) {
      // The device's current certificate: posture reports and renewals are verified
      // against its public key, without a round trip to the CA.
      await db.schema.alterTable('devices').addColumn('cert_pem', 'text').execute();
      await db.schema.alterTable('devices').addColumn('platform', 'text').execute();
      // admin, an enrollment token, auto-approval or a posture provider's name.
      await db.schema.alterTable('devices').addColumn('managed_by', 'text').execute();
      await db.schema.alterTable('devices').addColumn('revoked_reason', 'text').execute();

      // Tokens an admin hands out for enrollment without a login (fleets, CI machines).
      // Only the SHA-256 of the token is kept.
      await db.schema
        .createTable('device_enrollment_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_sha256', 'text', (c) => c.notNull().unique())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('note', 'text')
        .addColumn('managed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('max_uses', 'integer', (c) => c.notNull())
        .addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();

      // Device authorization grants (RFC 8628) in flight: the terminal holds the device
      // code, the user approves the user code in a browser after logging in.
      await db.schema
        .createTable('device_authorizations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('device_code_sha256', 'text', (c) => c.notNull().unique())
        .addColumn('user_code', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('serial', 'text')
        .addColumn('platform', 'text')
        .addColumn('csr_pem', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text')
        .addColumn('device_id', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('polled_at', 'bigint')
        .execute();

      // The latest posture per device and source (agent or a provider), what the proxy's
      // inventory loads; posture_reports keeps the history and the replay ids.
      await db.schema
        .createTable('device_posture')
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('reported_at', 'bigint', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addColumn('data_json', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('device_posture_pk', ['device_id', 'source'])
        .execute();
    },
  },
  '0004_assertion_keys': {
    async up(db: Kysely<unknown>) {
      // Keys of one purpose form a line of generations: a replica creates the first or
      // the next key by inserting generation n + 1, and the unique index lets only one
      // of several replicas racing to do so win. Rows written before are generation 0.
      await db.schema
        .alterTable('signing_keys')
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createIndex('signing_keys_purpose_generation')
        .on('signing_keys')
        .columns(['purpose', 'generation'])
        .unique()
        .execute();
    },
  },
  '0005_assertion_key_activation': {
    async up(db: Kysely<unknown>) {
      // A key is published ahead of signing (upstreams that cache the JWKS learn of it
      // before it is used); null means active from created_at.
      await db.schema.alterTable('signing_keys').addColumn('active_from', 'bigint').execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => MIGRATIONS,
};

/** Every migration name, in the order they apply. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(MIGRATIONS).sort();

/** Name of the newest migration; a store is current when it has applied this one. */
export const LATEST_MIGRATION = MIGRATION_NAMES.at(-1) ?? '';

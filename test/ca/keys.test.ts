import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CaSealingKey, CertificateAuthority, createCaKeyFile, loadCaSealingKey } from '../../src/ca/index.ts';
import { openStore } from '../../src/store/index.ts';
import { makeCa, makeCsr, TEST_DIR } from './helpers.ts';

describe('CA keys at rest', () => {
  it('the database never holds a private key in clear', async () => {
    const t = await makeCa();
    await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-1' });
    await t.ca.prepareNext();
    t.ca.close();
    await t.store.close();
    const path = t.url.slice('sqlite://'.length);
    const bytes = Buffer.concat([
      readFileSync(path),
      ...['-wal', '-shm'].flatMap((suffix) => {
        try {
          return [readFileSync(path + suffix)];
        } catch {
          return [];
        }
      }),
    ]);
    assert.equal(bytes.includes('PRIVATE KEY'), false);
    assert.equal(
      bytes.includes('BEGIN CERTIFICATE'),
      true,
      'the certificates are there, so the grep looks at the data',
    );
  });

  it('opening with the wrong CA key fails with ERR_CA_KEY_DECRYPT', async () => {
    const t = await makeCa();
    t.ca.close();
    await assert.rejects(
      CertificateAuthority.open({ store: t.store, sealingKey: CaSealingKey.generate(), clock: t.clock }),
      (error: Error & { code: string }) => {
        assert.equal(error.code, 'ERR_CA_KEY_DECRYPT');
        assert.match(error.message, /wrong CA key/);
        return true;
      },
    );
    await t.store.close();
  });

  it('a key file readable by others is refused; a new one is created 0600', () => {
    const path = join(TEST_DIR, 'ca.key');
    const created = createCaKeyFile(path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(loadCaSealingKey(path).toText(), created.toText());
    assert.throws(() => createCaKeyFile(path), { code: 'ERR_CA_KEY_FILE' });
    const open = join(TEST_DIR, 'open.key');
    writeFileSync(open, created.toText(), { mode: 0o644 });
    assert.throws(
      () => loadCaSealingKey(open),
      (error: Error & { code: string }) => {
        assert.equal(error.code, 'ERR_CA_KEY_FILE');
        assert.match(error.message, /0644/);
        return true;
      },
    );
    assert.throws(() => loadCaSealingKey(join(TEST_DIR, 'missing.key')), { code: 'ERR_CA_KEY_FILE' });
    const short = join(TEST_DIR, 'short.key');
    writeFileSync(short, 'c2hvcnQ', { mode: 0o600 });
    assert.throws(() => loadCaSealingKey(short), { code: 'ERR_CA_KEY_FILE' });
  });

  it('takes the key from VIGIL_CA_KEY when no file is given', () => {
    const key = CaSealingKey.generate();
    assert.equal(loadCaSealingKey(undefined, { VIGIL_CA_KEY: key.toText() }).toText(), key.toText());
    assert.throws(() => loadCaSealingKey(undefined, {}), { code: 'ERR_CA_KEY_FILE' });
  });

  it('an offline root key goes to its own file, and rotation needs it', async () => {
    const rootKeyFile = join(TEST_DIR, `root-${process.hrtime.bigint()}.key`);
    const t = await makeCa({ rootKeyFile });
    assert.equal(statSync(rootKeyFile).mode & 0o777, 0o600);
    assert.doesNotMatch(readFileSync(rootKeyFile, 'utf8'), /PRIVATE KEY/);
    const root = t.ca.authorities().find((a) => a.kind === 'root');
    assert.equal(root?.keyInStore, false);
    await assert.rejects(t.ca.prepareNext(), { code: 'ERR_CA_ROTATION' });
    const next = await t.ca.prepareNext({ rootKeyFile });
    assert.equal(next.slot, 'next');
    t.ca.close();
    await t.store.close();
  });

  it('init refuses a database that already holds a CA', async () => {
    const t = await makeCa();
    t.ca.close();
    await assert.rejects(makeCa({ url: t.url }), { code: 'ERR_CA_ALREADY_INITIALIZED' });
    await t.store.close();
  });
});

describe('CA self-check', () => {
  it('a stored intermediate that does not chain to the stored root refuses to load', async () => {
    const a = await makeCa();
    const b = await makeCa();
    a.ca.close();
    b.ca.close();
    const otherRoot = await b.store.db
      .selectFrom('ca_authorities')
      .select('cert_pem')
      .where('kind', '=', 'root')
      .executeTakeFirstOrThrow();
    await a.store.db
      .updateTable('ca_authorities')
      .set({ cert_pem: otherRoot.cert_pem })
      .where('kind', '=', 'root')
      .execute();
    await assert.rejects(
      CertificateAuthority.open({ store: a.store, sealingKey: a.sealingKey, clock: a.clock }),
      (error: Error & { code: string }) => {
        assert.equal(error.code, 'ERR_CA_SELF_CHECK');
        assert.match(error.message, /does not chain to a root/);
        return true;
      },
    );
    await a.store.close();
    await b.store.close();
  });

  it('an intermediate whose key does not match its certificate refuses to load', async () => {
    const a = await makeCa();
    const b = await makeCa();
    a.ca.close();
    b.ca.close();
    const otherIntermediate = await b.store.db
      .selectFrom('ca_authorities')
      .select('cert_pem')
      .where('kind', '=', 'intermediate')
      .executeTakeFirstOrThrow();
    await a.store.db
      .updateTable('ca_authorities')
      .set({ cert_pem: otherIntermediate.cert_pem })
      .where('kind', '=', 'intermediate')
      .execute();
    await assert.rejects(
      CertificateAuthority.open({ store: a.store, sealingKey: a.sealingKey, clock: a.clock }),
      {
        code: 'ERR_CA_SELF_CHECK',
      },
    );
    await a.store.close();
    await b.store.close();
  });

  it('an expired intermediate refuses to load', async () => {
    const t = await makeCa({ intermediateTtlMs: 3_600_000 });
    t.ca.close();
    t.clock.advance(2 * 3_600_000);
    await assert.rejects(
      CertificateAuthority.open({ store: t.store, sealingKey: t.sealingKey, clock: t.clock }),
      {
        code: 'ERR_CA_SELF_CHECK',
      },
    );
    await t.store.close();
  });

  it('an empty database is not a CA', async () => {
    const t = await makeCa();
    t.ca.close();
    const empty = await openStore(`sqlite://${join(TEST_DIR, `empty-${process.hrtime.bigint()}.db`)}`);
    await assert.rejects(CertificateAuthority.open({ store: empty, sealingKey: t.sealingKey }), {
      code: 'ERR_CA_NOT_INITIALIZED',
    });
    await empty.close();
    await t.store.close();
  });
});

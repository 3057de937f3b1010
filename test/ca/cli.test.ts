import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../support/cli.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { makeCsr, OPENSSL, openssl, TEST_DIR } from './helpers.ts';

describe('vigil ca', () => {
  it('init, issue, revoke, crl, rotate and status work end to end', async () => {
    const database = freshSqliteUrl();
    const keyFile = join(TEST_DIR, `cli-${process.hrtime.bigint()}.key`);
    const db = ['--database', database];
    const withKey = [...db, '--key-file', keyFile];

    const init = await runCli(['ca', 'init', '--trust-domain', 'corp.example', ...withKey, '--json']);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const authorities = JSON.parse(init.stdout) as { kind: string; fingerprint: string }[];
    assert.deepEqual(authorities.map((a) => a.kind).sort(), ['intermediate', 'root']);
    assert.match(authorities[0]?.fingerprint ?? '', /^sha256:[0-9a-f]{64}$/);

    const again = await runCli(['ca', 'init', '--trust-domain', 'corp.example', ...withKey]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already initialized/);

    const bundleFile = join(TEST_DIR, `bundle-${process.hrtime.bigint()}.pem`);
    const bundle = await runCli(['ca', 'bundle', ...db]);
    assert.equal(bundle.code, 0, bundle.stderr);
    writeFileSync(bundleFile, bundle.stdout);
    const jwks = JSON.parse((await runCli(['ca', 'bundle', '--format', 'jwks', ...db])).stdout) as {
      keys: unknown[];
    };
    assert.equal(jwks.keys.length, 2);

    const csrFile = join(TEST_DIR, `device-${process.hrtime.bigint()}.csr`);
    writeFileSync(csrFile, await makeCsr());
    const chainFile = join(TEST_DIR, `chain-${process.hrtime.bigint()}.pem`);
    const issued = await runCli([
      'ca',
      'issue',
      '--kind',
      'device',
      '--csr',
      csrFile,
      '--id',
      'd-7',
      '--ttl',
      '2h',
      '--out',
      chainFile,
      ...withKey,
      '--json',
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const cert = JSON.parse(issued.stdout) as {
      serial: string;
      spiffe_id: string;
      not_after: string;
      renew_after: string;
    };
    assert.equal(cert.spiffe_id, 'spiffe://corp.example/device/d-7');
    const chain =
      readFileSync(chainFile, 'utf8').match(
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g,
      ) ?? [];
    const leafFile = join(TEST_DIR, `leaf-${process.hrtime.bigint()}.pem`);
    writeFileSync(leafFile, chain[0] ?? '');
    assert.match(await openssl(['verify', '-CAfile', bundleFile, leafFile]), /OK/);

    const wrongKey = await runCli(
      ['ca', 'issue', '--kind', 'device', '--csr', csrFile, '--id', 'd-7', ...db],
      {
        env: { VIGIL_CA_KEY: 'A'.repeat(43) },
      },
    );
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /cannot decrypt/);

    const revoked = await runCli([
      'ca',
      'revoke',
      cert.serial,
      '--reason',
      'key-compromise',
      ...withKey,
      '--json',
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const crlFile = join(TEST_DIR, `crl-${process.hrtime.bigint()}.der`);
    const crl = await runCli(['ca', 'crl', '--format', 'der', '--out', crlFile, ...withKey]);
    assert.equal(crl.code, 0, crl.stderr);
    assert.match(
      await openssl(['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text']),
      new RegExp(cert.serial.toUpperCase()),
    );

    assert.equal((await runCli(['ca', 'rotate', 'prepare', ...withKey])).code, 0);
    const activated = await runCli(['ca', 'rotate', 'activate', ...withKey, '--json']);
    assert.equal(activated.code, 0, activated.stderr);
    const status = await runCli(['ca', 'status', ...db, '--json']);
    const slots = (JSON.parse(status.stdout) as { kind: string; slot: string }[])
      .map((a) => `${a.kind}:${a.slot}`)
      .sort();
    assert.deepEqual(slots, ['intermediate:current', 'intermediate:retired', 'root:current']);
    const table = await runCli(['ca', 'status', ...db]);
    assert.match(table.stdout, /trust domain: corp.example/);
    assert.match(table.stdout, /KIND\s+SLOT/);
  });

  it('refuses a key file readable by others', async () => {
    const keyFile = join(TEST_DIR, `open-${process.hrtime.bigint()}.key`);
    writeFileSync(keyFile, 'A'.repeat(43), { mode: 0o644 });
    const result = await runCli([
      'ca',
      'init',
      '--trust-domain',
      'corp.example',
      '--key-file',
      keyFile,
      '--database',
      freshSqliteUrl(),
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /readable by group or others \(mode 0644\)/);
  });

  it('imports an intermediate from an upstream CA made with openssl', async () => {
    const dir = TEST_DIR;
    const tag = process.hrtime.bigint();
    const f = (name: string) => join(dir, `${tag}-${name}`);
    writeFileSync(
      f('ext.cnf'),
      '[v3_ca]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n',
    );
    const ossl = async (args: string[]) => openssl(args);
    await ossl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f('root.key'),
      '-out',
      f('root.pem'),
      '-subj',
      '/CN=Upstream Root',
      '-days',
      '30',
    ]);
    await ossl([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f('int.key'),
      '-out',
      f('int.csr'),
      '-subj',
      '/CN=Upstream Intermediate',
    ]);
    await ossl([
      'x509',
      '-req',
      '-in',
      f('int.csr'),
      '-CA',
      f('root.pem'),
      '-CAkey',
      f('root.key'),
      '-CAcreateserial',
      '-out',
      f('int.pem'),
      '-days',
      '10',
      '-extfile',
      f('ext.cnf'),
      '-extensions',
      'v3_ca',
    ]);
    writeFileSync(f('chain.pem'), readFileSync(f('int.pem'), 'utf8') + readFileSync(f('root.pem'), 'utf8'));
    const database = freshSqliteUrl();
    const keyFile = f('ca.key');
    writeFileSync(keyFile, 'B'.repeat(43), { mode: 0o600 });
    const imported = await runCli([
      'ca',
      'import',
      '--cert',
      f('chain.pem'),
      '--key',
      f('int.key'),
      '--trust-domain',
      'corp.example',
      '--key-file',
      keyFile,
      '--database',
      database,
    ]);
    assert.equal(imported.code, 0, imported.stderr);
    writeFileSync(f('w.csr'), await makeCsr({ keyType: 'ed25519' }));
    const issued = await runCli([
      'ca',
      'issue',
      '--kind',
      'workload',
      '--csr',
      f('w.csr'),
      '--id',
      'spiffe://corp.example/api',
      '--out',
      f('w.pem'),
      '--key-file',
      keyFile,
      '--database',
      database,
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const leaf = readFileSync(f('w.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0] ?? '';
    writeFileSync(f('leaf.pem'), leaf);
    assert.match(
      await openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('int.pem'), f('leaf.pem')]),
      /OK/,
    );
    assert.ok(OPENSSL);

    // A key that is not the certificate's is refused.
    const otherDb = freshSqliteUrl();
    const wrong = await runCli([
      'ca',
      'import',
      '--cert',
      f('chain.pem'),
      '--key',
      f('root.key'),
      '--trust-domain',
      'corp.example',
      '--key-file',
      keyFile,
      '--database',
      otherDb,
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /self-check|import/);
  });
});

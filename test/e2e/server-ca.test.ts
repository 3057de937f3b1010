import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli, spawnServer } from '../support/cli.ts';
import { tempDir } from '../support/tmp.ts';

function setup() {
  const dir = tempDir();
  const database = `sqlite://${join(dir, 'data', 'vigil.db')}`;
  const keyFile = join(dir, 'ca.key');
  const config = join(dir, 'vigil.yaml');
  writeFileSync(
    config,
    `server:
  proxy_listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
database: { url: "${database}" }
log: { format: json }
ca:
  key_file: ${keyFile}
`,
  );
  return { dir, database, keyFile, config };
}

describe('vigil server with the internal CA', () => {
  it('serves the trust bundle and CRL of a CA made with vigil ca init; issuing is audited', async () => {
    const { dir, database, keyFile, config } = setup();
    const init = await runCli([
      'ca',
      'init',
      '--trust-domain',
      'corp.example',
      '--key-file',
      keyFile,
      '--database',
      database,
    ]);
    assert.equal(init.code, 0, init.stderr);
    // An operator issues a device certificate; the issuance is an admin event in the audit log.
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'device.key'], {
      cwd: dir,
    });
    execFileSync(
      'openssl',
      [
        'req',
        '-new',
        '-key',
        'device.key',
        '-subj',
        '/CN=laptop-1',
        '-addext',
        'subjectAltName=URI:spiffe://corp.example/device/laptop-1',
        '-out',
        'device.csr',
      ],
      { cwd: dir },
    );
    const issued = await runCli([
      'ca',
      'issue',
      '--kind',
      'device',
      '--csr',
      join(dir, 'device.csr'),
      '--id',
      'laptop-1',
      '--key-file',
      keyFile,
      '--database',
      database,
      '--json',
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const serial = (JSON.parse(issued.stdout) as { serial: string }).serial;
    const admin = await runCli(['audit', 'query', '--database', database, '--kind', 'admin', '--json']);
    const events = JSON.parse(admin.stdout) as { action: string; target: string }[];
    assert.ok(
      events.some((event) => event.action === 'certificate.issued' && event.target === serial),
      admin.stdout,
    );
    const server = await spawnServer(config);
    try {
      const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
      const headers = { authorization: `Bearer ${token}` };
      const bundle = await fetch(`${server.adminUrl}/api/v1/ca/bundle`, { headers });
      assert.equal(bundle.status, 200);
      assert.match(JSON.stringify(await bundle.json()), /BEGIN CERTIFICATE/);
      const crl = await fetch(`${server.adminUrl}/api/v1/ca/crl`, { headers });
      assert.equal(crl.status, 200);
      assert.equal(
        (await fetch(`${server.adminUrl}/api/v1/ca/bundle`)).status,
        401,
        'the admin API needs the token',
      );
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('refuses to start when the config names a CA that was never initialized', async () => {
    const { config, keyFile } = setup();
    writeFileSync(keyFile, `${'a'.repeat(43)}\n`, { mode: 0o600 });
    const result = await runCli(['server', '--config', config]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /vigil ca init|not initialized|key/i);
  });
});

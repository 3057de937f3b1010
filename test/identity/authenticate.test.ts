import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { parseConfig } from '../../src/config/index.ts';
import { createIdentity, type IdentityService } from '../../src/identity/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { silentLogger } from '../../src/telemetry/index.ts';
import { tempDir } from '../support/tmp.ts';

const dir = tempDir();
const keys = await generateKeyPair('ES256', { extractable: true });
const jwk: JWK = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256' };
let issuer = '';
let idpServer: Server;
let store: Store;
let identity: IdentityService;

/** An IdP with just discovery and JWKS, enough for bearer tokens. */
async function startIdp(): Promise<void> {
  idpServer = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    if (request.url === '/.well-known/openid-configuration') {
      response.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
        }),
      );
    } else response.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => idpServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`;
}

function token(claims: Record<string, unknown> = {}) {
  return new SignJWT({ sub: 'svc-1', groups: ['robots'], ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience('https://api.corp.example')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(keys.privateKey);
}

before(async () => {
  await startIdp();
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'x\n', { mode: 0o600 });
  const { config } = parseConfig(
    `identity_providers:
  - name: corp
    issuer: ${issuer}
    client_id: vigil
    client_secret_file: ${secret}
    audience: https://api.corp.example
    algorithms: [ES256]
    typ: at+jwt
    claims:
      groups: groups
`,
    'vigil.yaml',
    {},
    dir,
  );
  store = await openStore(`sqlite://${join(dir, 'vigil.db')}`);
  identity = await createIdentity({ config, store, logger: silentLogger(), dataDir: join(dir, 'data') });
});

after(async () => {
  await identity.close();
  await store.close();
  idpServer.close();
});

describe('authenticate(request)', () => {
  it('says credential-missing for a request with neither cookie nor bearer token', () => {
    assert.deepEqual(identity.authenticate({ headers: {} }), { reason: 'credential-missing' });
  });

  it('verifies a bearer token against the JWKS named by discovery, then answers synchronously from the cache', async () => {
    const bearer = await token();
    const headers = { authorization: `Bearer ${bearer}` };
    assert.equal(identity.authenticateSync({ headers }).reason, 'token-not-yet-verified');
    const first = await identity.authenticate({ headers });
    assert.equal(first.identity?.userId, 'corp:svc-1');
    assert.deepEqual(first.identity?.groups, ['robots']);
    assert.equal(first.identity?.kind, 'bearer');
    assert.ok(first.identity?.key.startsWith('bearer:'));
    assert.ok(!first.identity?.key.includes(bearer));
    const second = identity.authenticate({ headers });
    assert.ok(!(second instanceof Promise), 'a cached token is answered synchronously');
    assert.equal(identity.authenticateSync({ headers }).identity?.userId, 'corp:svc-1');
  });

  it('checks typ and audience as configured', async () => {
    const wrongTyp = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience('https://api.corp.example')
      .setExpirationTime('5m')
      .sign(keys.privateKey);
    assert.equal(
      (await identity.authenticate({ headers: { authorization: `Bearer ${wrongTyp}` } })).reason,
      'token-typ-mismatch',
    );
    const wrongAud = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience('vigil')
      .setExpirationTime('5m')
      .sign(keys.privateKey);
    assert.equal(
      (await identity.authenticate({ headers: { authorization: `Bearer ${wrongAud}` } })).reason,
      'token-audience-mismatch',
    );
  });

  it('refuses an oversized Authorization header before parsing and a garbage session cookie', async () => {
    const huge = { authorization: `Bearer ${'a'.repeat(17 * 1024)}` };
    assert.deepEqual(identity.authenticate({ headers: huge }), { reason: 'token-too-large' });
    assert.deepEqual(identity.authenticate({ headers: { cookie: '_vigil_session=v1.AAAA' } }), {
      reason: 'session-cookie-invalid',
    });
    assert.deepEqual(
      identity.authenticate({
        headers: { cookie: `other=1; _vigil_session=${randomBytes(40).toString('base64url')}` },
      }),
      {
        reason: 'session-cookie-invalid',
      },
    );
  });

  it('keeps verifying new tokens with cached keys when the IdP goes down mid-run', async () => {
    idpServer.closeAllConnections();
    await new Promise<void>((resolve) => idpServer.close(() => resolve()));
    const fresh = await token({ jti: 'after-outage' });
    const result = await identity.authenticate({ headers: { authorization: `Bearer ${fresh}` } });
    assert.equal(result.identity?.userId, 'corp:svc-1');
  });
});

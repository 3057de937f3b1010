import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { JwtVerifier, type TrustedIssuer } from '../../src/identity/index.ts';
import { systemClock } from '../../src/internal/clock.ts';

const ISSUER = 'https://idp.example';

async function keyPair(kid: string) {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256' };
  return { ...pair, jwk, kid };
}

/** A JWKS endpoint whose key list and availability the test controls. */
async function jwksServer(keys: JWK[]) {
  const state = { keys, fetches: 0 };
  const server: Server = createServer((_request, response) => {
    state.fetches += 1;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`);
  return {
    state,
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function trusted(url: URL, overrides: Partial<TrustedIssuer> = {}): TrustedIssuer {
  return {
    name: 'corp',
    issuer: ISSUER,
    audience: 'vigil',
    algorithms: ['ES256'],
    leewayMs: 30_000,
    claims: { user_id: 'sub', email: 'email', groups: 'groups' },
    keys: url,
    ...overrides,
  };
}

function sign(key: Awaited<ReturnType<typeof keyPair>>, jti: string) {
  return new SignJWT({ sub: 'alice', jti })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience('vigil')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key.privateKey);
}

describe('remote JWKS', () => {
  it('keeps verifying with cached keys while the IdP is down, then denies when the cache ends', async () => {
    const k1 = await keyPair('k1');
    const idp = await jwksServer([k1.jwk]);
    const verifier = new JwtVerifier([trusted(idp.url, { jwksCacheMaxAgeMs: 400 })], { clock: systemClock });
    assert.ok((await verifier.verify(await sign(k1, 'a'))).identity);
    await idp.stop();
    // A token never seen before, so the verified-token cache cannot answer: the key cache does.
    assert.ok((await verifier.verify(await sign(k1, 'b'))).identity, 'cached key still verifies');
    await sleep(500);
    const late = await verifier.verify(await sign(k1, 'c'));
    assert.equal(late.identity, undefined, 'never allow without a key');
    assert.equal(late.reason, 'idp-unavailable');
  });

  it('denies with idp-unavailable when the IdP is down at start and nothing is cached', async () => {
    const k1 = await keyPair('k1');
    const idp = await jwksServer([k1.jwk]);
    await idp.stop();
    const verifier = new JwtVerifier([trusted(idp.url)], { clock: systemClock });
    const result = await verifier.verify(await sign(k1, 'a'));
    assert.equal(result.identity, undefined);
    assert.equal(result.reason, 'idp-unavailable');
  });

  it('refetches once on an unknown kid (rotation) and rate-limits further refetches', async () => {
    const k1 = await keyPair('k1');
    const k2 = await keyPair('k2');
    const k3 = await keyPair('k3');
    const idp = await jwksServer([k1.jwk]);
    try {
      const verifier = new JwtVerifier([trusted(idp.url, { jwksCooldownMs: 60_000 })], {
        clock: systemClock,
      });
      assert.ok((await verifier.verify(await sign(k1, 'a'))).identity);
      assert.equal(idp.state.fetches, 1);
      // The IdP now publishes k2, but the last fetch is inside the 60 s cooldown: an
      // unknown kid is refused without hammering the IdP.
      idp.state.keys = [k1.jwk, k2.jwk];
      const early = await verifier.verify(await sign(k2, 'b'));
      assert.equal(early.reason, 'token-key-unknown');
      assert.equal(idp.state.fetches, 1, 'no refetch inside the cooldown');

      idp.state.keys = [k1.jwk];
      const rotating = new JwtVerifier([trusted(idp.url, { jwksCooldownMs: 0 })], { clock: systemClock });
      assert.ok((await rotating.verify(await sign(k1, 'c'))).identity);
      idp.state.keys = [k1.jwk, k2.jwk];
      const before = idp.state.fetches;
      assert.ok((await rotating.verify(await sign(k2, 'd'))).identity, 'rotated key found after one refetch');
      assert.equal(idp.state.fetches, before + 1);
      assert.equal((await rotating.verify(await sign(k3, 'e'))).reason, 'token-key-unknown');
    } finally {
      await idp.stop();
    }
  });
});

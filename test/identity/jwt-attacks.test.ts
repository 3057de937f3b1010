import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLocalJWKSet, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import { JwtVerifier, type TrustedIssuer } from '../../src/identity/index.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { createLogger } from '../../src/telemetry/index.ts';

const ISSUER = 'https://idp.example';
const AUDIENCE = 'vigil';
const clock = new ManualClock(Date.UTC(2026, 0, 5, 12, 0, 0));
const nowS = () => Math.floor(clock.now() / 1000);

const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
const other = await generateKeyPair('RS256', { extractable: true });
const otherJwk: JWK = { ...(await exportJWK(other.publicKey)), kid: 'k2', alg: 'RS256' };

function trusted(overrides: Partial<TrustedIssuer> = {}): TrustedIssuer {
  return {
    name: 'corp',
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['RS256', 'ES256'],
    leewayMs: 30_000,
    claims: { user_id: 'sub', email: 'email', groups: 'groups' },
    keys: createLocalJWKSet({ keys: [publicJwk] }),
    ...overrides,
  };
}

function sign(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key = privateKey) {
  const payload = {
    sub: 'alice',
    email: 'alice@example.com',
    groups: ['sre'],
    amr: ['pwd', 'mfa'],
    iss: ISSUER,
    aud: AUDIENCE,
    iat: nowS(),
    exp: nowS() + 300,
    ...claims,
  };
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'k1', ...header }).sign(key);
}

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger({ destination: stream, level: 'trace', format: 'json' }) };
}

describe('bearer JWT verification: attacks', async () => {
  const valid = await sign();
  const [h, p, s] = valid.split('.') as [string, string, string];
  const spki = await exportSPKI(publicKey);
  const hsHeader = b64({ alg: 'HS256', kid: 'k1', typ: 'JWT' });
  const hsSignature = createHmac('sha256', spki).update(`${hsHeader}.${p}`).digest('base64url');
  const attackerKeys = await generateKeyPair('RS256', { extractable: true });
  const attackerJwk = await exportJWK(attackerKeys.publicKey);

  const cases: [string, string | Promise<string>, string][] = [
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`, 'token-unsigned'],
    ['alg none with a signature segment', `${b64({ alg: 'none' })}.${p}.${s}`, 'token-unsigned'],
    ['HS256 signed with the RSA public key', `${hsHeader}.${p}.${hsSignature}`, 'token-alg-not-allowed'],
    [
      'an algorithm not allowlisted for the issuer',
      `${b64({ alg: 'PS256', kid: 'k1' })}.${p}.${s}`,
      'token-alg-not-allowed',
    ],
    ['a kid not in the JWKS', sign({}, { kid: 'k2' }, other.privateKey), 'token-key-unknown'],
    [
      'a jwk header carrying the attacker key',
      sign({}, { jwk: attackerJwk }, attackerKeys.privateKey),
      'token-key-in-header',
    ],
    [
      'a jku header pointing to the attacker JWKS',
      sign({}, { jku: 'https://evil.example/jwks' }),
      'token-key-in-header',
    ],
    ['an x5c header', sign({}, { x5c: ['MIIB'] }), 'token-key-in-header'],
    ['an expired token (beyond leeway)', sign({ exp: nowS() - 31 }), 'token-expired'],
    ['a token not yet valid (beyond leeway)', sign({ nbf: nowS() + 60 }), 'token-not-yet-valid'],
    ['a token issued in the future', sign({ iat: nowS() + 120 }), 'token-iat-invalid'],
    ['a wrong iss', sign({ iss: 'https://evil.example' }), 'token-issuer-unknown'],
    ['a wrong aud', sign({ aud: 'someone-else' }), 'token-audience-mismatch'],
    [
      'a bad signature',
      `${h}.${p}.${s.slice(0, -6)}${s.slice(-6) === 'AAAAAA' ? 'BBBBBB' : 'AAAAAA'}`,
      'token-signature-invalid',
    ],
    [
      'a signature from another key under the right kid',
      sign({}, {}, other.privateKey),
      'token-signature-invalid',
    ],
    [
      'a payload swapped under a valid signature',
      `${h}.${b64({ sub: 'root', iss: ISSUER, aud: AUDIENCE, exp: nowS() + 60 })}.${s}`,
      'token-signature-invalid',
    ],
    ['a truncated token', `${h}.${p}`, 'token-malformed'],
    ['a token with a non-base64url character', `${h}.${p}.${s}!`, 'token-malformed'],
    ['a token over 16 KiB', `${h}.${'A'.repeat(16 * 1024)}.${s}`, 'token-too-large'],
    ['a non-JSON payload', `${h}.${b64('not json at all')}.${s}`, 'token-payload-invalid'],
    ['a non-JSON header', `${b64('{{')}.${p}.${s}`, 'token-malformed'],
    ['a token without a subject', sign({ sub: undefined }), 'token-subject-missing'],
  ];

  const { lines, logger } = capture();
  const verifier = new JwtVerifier([trusted()], { clock, logger });
  const seen = new Map<string, string>();
  const tokens: string[] = [];

  for (const [title, tokenPromise, reason] of cases) {
    it(`rejects ${title} with ${reason}`, async () => {
      const token = await tokenPromise;
      tokens.push(token);
      const result = await verifier.verify(token);
      assert.equal(result.identity, undefined);
      assert.equal(result.reason, reason);
      seen.set(title, reason);
    });
  }

  it('accepts the valid token and maps its claims', async () => {
    const result = await verifier.verify(valid);
    assert.equal(result.reason, undefined);
    assert.equal(result.identity?.userId, 'corp:alice');
    assert.deepEqual(result.identity?.groups, ['sre']);
    assert.deepEqual(result.identity?.amr, ['pwd', 'mfa']);
    assert.equal(result.identity?.kind, 'bearer');
  });

  it('gives the attack classes distinct reasons and never logs a token', () => {
    assert.equal(seen.size, cases.length);
    const distinct = new Set(seen.values());
    assert.ok(distinct.size >= 14, `only ${distinct.size} distinct reasons`);
    const log = lines.join('');
    assert.match(log, /"reason":"token-unsigned"/);
    assert.match(log, /"reason":"token-expired"/);
    for (const token of tokens) {
      const signature = token.split('.')[2] ?? '';
      assert.ok(!log.includes(token), 'raw token in the log');
      if (signature.length > 20) assert.ok(!log.includes(signature), 'token signature in the log');
    }
    assert.ok(!log.includes(p), 'token payload in the log');
  });
});

describe('bearer JWT verification: checks and cache', () => {
  it('accepts exp within the leeway and refuses it beyond', async () => {
    const verifier = new JwtVerifier([trusted({ leewayMs: 30_000 })], { clock });
    assert.ok((await verifier.verify(await sign({ exp: nowS() - 20 }))).identity);
    assert.equal((await verifier.verify(await sign({ exp: nowS() - 40 }))).reason, 'token-expired');
  });

  it('checks typ where configured', async () => {
    const verifier = new JwtVerifier([trusted({ typ: 'at+jwt' })], { clock });
    assert.equal((await verifier.verify(await sign({}, { typ: 'JWT' }))).reason, 'token-typ-mismatch');
    assert.ok((await verifier.verify(await sign({}, { typ: 'at+jwt' }))).identity);
    assert.ok((await verifier.verify(await sign({}, { typ: 'application/AT+JWT' }))).identity);
  });

  it('reads groups from a nested claim path', async () => {
    const verifier = new JwtVerifier(
      [trusted({ claims: { user_id: 'sub', email: 'email', groups: 'realm_access.roles' } })],
      { clock },
    );
    const result = await verifier.verify(await sign({ realm_access: { roles: ['admin', 'dev', 7] } }));
    assert.deepEqual(result.identity?.groups, ['admin', 'dev']);
  });

  it('verifies a token once and serves it from the cache until exp', async () => {
    let lookups = 0;
    const local = createLocalJWKSet({ keys: [publicJwk] });
    const local2 = new ManualClock(clock.now());
    const verifier = new JwtVerifier(
      [
        trusted({
          keys: (header, token) => {
            lookups += 1;
            return local(header, token);
          },
        }),
      ],
      { clock: local2 },
    );
    const token = await sign({ exp: nowS() + 60 });
    assert.ok((await verifier.verify(token)).identity);
    assert.ok((await verifier.verify(token)).identity);
    assert.ok(verifier.cached(token));
    assert.equal(lookups, 1);
    local2.advance(100_000);
    assert.equal(verifier.cached(token), undefined, 'an expired token is not served from the cache');
    assert.equal((await verifier.verify(token)).reason, 'token-expired');
  });

  it('bounds the cache', async () => {
    const verifier = new JwtVerifier([trusted()], { clock, cacheSize: 3 });
    for (let i = 0; i < 5; i++) assert.ok((await verifier.verify(await sign({ jti: `t${i}` }))).identity);
    assert.equal(verifier.cacheSize, 3);
  });

  it('refuses to be configured with none or a symmetric algorithm', () => {
    assert.throws(() => new JwtVerifier([trusted({ algorithms: ['none'] })], { clock }), TypeError);
    assert.throws(() => new JwtVerifier([trusted({ algorithms: ['HS256'] })], { clock }), TypeError);
  });

  it('keeps two issuers apart: a token from one is not accepted under the other audience', async () => {
    const verifier = new JwtVerifier(
      [
        trusted(),
        trusted({
          name: 'other',
          issuer: 'https://other.example',
          keys: createLocalJWKSet({ keys: [otherJwk] }),
        }),
      ],
      { clock },
    );
    const fromOther = await new SignJWT({ sub: 'bob' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer('https://other.example')
      .setAudience(AUDIENCE)
      .setExpirationTime(nowS() + 60)
      .sign(privateKey);
    assert.equal((await verifier.verify(fromOther)).reason, 'token-key-unknown');
  });
});

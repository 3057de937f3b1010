// Bearer JWT verification: Vigil's JwtVerifier (verified-token cache by sha256 until exp)
// against plain jose.jwtVerify of the same tokens, in the same run.
// Progress on stderr; the JSON result is the last line on stdout.
import { performance } from 'node:perf_hooks';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { JwtVerifier } from '../src/identity/index.ts';
import { systemClock } from '../src/internal/clock.ts';

const ISSUER = 'https://idp.example';
const AUDIENCE = 'vigil';
/** Distinct live tokens, as from that many users hitting the proxy. */
const TOKENS = 200;
const DURATION_MS = Number(process.env.BENCH_MS ?? 2000);

const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
const tokens: string[] = [];
for (let i = 0; i < TOKENS; i++) {
  tokens.push(
    await new SignJWT({
      sub: `user${i}`,
      email: `user${i}@example.com`,
      groups: ['engineering', 'sre'],
      amr: ['pwd'],
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey),
  );
}

const verifier = new JwtVerifier(
  [
    {
      name: 'corp',
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['RS256'],
      leewayMs: 30_000,
      claims: { user_id: 'sub', email: 'email', groups: 'groups' },
      keys: jwks,
    },
  ],
  { clock: systemClock },
);

async function measure(name: string, once: (token: string) => Promise<unknown>) {
  // Warm-up also fills Vigil's cache, as a running proxy's would be.
  for (const token of tokens) await once(token);
  const samples: number[] = [];
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < DURATION_MS) {
    const token = tokens[count % TOKENS] as string;
    const t0 = performance.now();
    await once(token);
    samples.push(performance.now() - t0);
    count += 1;
  }
  const elapsed = performance.now() - started;
  samples.sort((a, b) => a - b);
  const p99 = samples[Math.floor(samples.length * 0.99)] ?? 0;
  const perSecond = Math.round((count / elapsed) * 1000);
  process.stderr.write(`${name}: ${perSecond}/s, p99 ${(p99 * 1000).toFixed(1)} µs\n`);
  return { perSecond, p99us: Math.round(p99 * 1000 * 10) / 10 };
}

const vigil = await measure('vigil JwtVerifier (cached)', async (token) => {
  const result = await verifier.verify(token);
  if (!result.identity) throw new Error(`vigil refused a valid token: ${result.reason}`);
});
const plain = await measure('jose.jwtVerify', async (token) => {
  await jwtVerify(token, jwks, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'] });
});

process.stdout.write(
  `${JSON.stringify({
    bench: 'jwt',
    metric: 'verifications/s',
    value: vigil.perSecond,
    peers: { 'jose-jwtVerify': plain.perSecond },
    ratios: { 'jose-jwtVerify': Math.round((vigil.perSecond / plain.perSecond) * 10) / 10 },
    p99_us: vigil.p99us,
  })}\n`,
);

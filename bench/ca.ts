// Certificate issuance throughput: CSR parse + policy checks (including the CSR's own
// signature) + signing a P-256 device certificate, against raw WebCrypto doing P-256
// generateKey + sign of a payload the size of the certificate's TBS, in the same run.
// The devices' CSRs (and their keys) are made before timing, as a real device makes
// its own. Progress on stderr; the JSON result is the last line on stdout.
import { KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { signDeviceCertificate } from '../src/ca/index.ts';
import {
  createIntermediateCertificate,
  createRootCertificate,
  generateCaKeys,
} from '../src/ca/lib/certificates.ts';
import { type KeyPair, subtle, x509 } from '../src/ca/lib/x509.ts';
import { systemClock } from '../src/internal/clock.ts';

const CSRS = 2_000;
const WARMUP = 200;
const PASSES = 6;
const log = (text: string) => process.stderr.write(`[bench ca] ${text}\n`);

const rootKeys = await generateCaKeys('ecdsa-p256');
const root = await createRootCertificate({
  id: 'bench',
  trustDomain: 'bench.example',
  keys: rootKeys,
  clock: systemClock,
  ttlMs: 86_400_000,
});
const intermediateKeys = await generateCaKeys('ecdsa-p256');
const intermediate = await createIntermediateCertificate({
  id: 'bench',
  trustDomain: 'bench.example',
  publicKey: intermediateKeys.publicKey,
  root,
  rootKey: rootKeys.privateKey,
  clock: systemClock,
  ttlMs: 86_400_000,
});
const signer = {
  id: 'bench',
  cert: intermediate,
  key: KeyObject.from(intermediateKeys.privateKey),
  trustDomain: 'bench.example',
  clock: systemClock,
};

log(`making ${CSRS} P-256 CSRs (device side, untimed)`);
const csrs: string[] = [];
for (let i = 0; i < CSRS; i++) {
  const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ])) as KeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [`device-${i}`] }],
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  csrs.push(csr.toString('pem'));
}

// The peer signs a payload as large as what Vigil signs: the TBS part of a device cert.
const sample = await signDeviceCertificate(signer, { csr: csrs[0] ?? '', deviceId: 'd-0' });
const tbsBytes = Math.max(1, new NodeX509Certificate(sample.pem).raw.length - 80);
const payload = new Uint8Array(tbsBytes).fill(0x5a);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function vigilOnce(index: number): Promise<void> {
  await signDeviceCertificate(signer, { csr: csrs[index % CSRS] ?? '', deviceId: `d-${index % CSRS}` });
}

async function webcryptoOnce(): Promise<void> {
  const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ])) as KeyPair;
  await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, payload);
}

/** Runs `fn` `count` times one after another; returns ops/s and per-op microseconds. */
async function measure(
  count: number,
  fn: (index: number) => Promise<void>,
): Promise<{ rate: number; micros: number[] }> {
  const micros: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    micros.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { rate: count / seconds, micros };
}

for (let i = 0; i < WARMUP; i++) {
  await vigilOnce(i);
  await webcryptoOnce();
}

// Interleaved passes, the order swapped every pass, so that both sides see the same
// machine state; the median of the per-pass ratios is reported (WebCrypto's async jobs
// swing more between passes than the synchronous signing path does).
const median = (values: number[]) => percentile(values, 50);
const vigilRates: number[] = [];
const peerRates: number[] = [];
const passRatios: number[] = [];
let vigilMicros: number[] = [];
for (let pass = 0; pass < PASSES; pass++) {
  let vigil: Awaited<ReturnType<typeof measure>>;
  let peer: Awaited<ReturnType<typeof measure>>;
  if (pass % 2 === 0) {
    vigil = await measure(CSRS, vigilOnce);
    peer = await measure(CSRS, webcryptoOnce);
  } else {
    peer = await measure(CSRS, webcryptoOnce);
    vigil = await measure(CSRS, vigilOnce);
  }
  log(
    `pass ${pass + 1}: vigil ${Math.round(vigil.rate)} certs/s, webcrypto keygen+sign ${Math.round(peer.rate)} ops/s, ratio ${(vigil.rate / peer.rate).toFixed(2)}`,
  );
  vigilRates.push(vigil.rate);
  peerRates.push(peer.rate);
  passRatios.push(vigil.rate / peer.rate);
  vigilMicros = vigilMicros.concat(vigil.micros);
}
const vigilRate = median(vigilRates);
const peerRate = median(peerRates);

const round = (value: number, digits = 2) => Number(value.toFixed(digits));
process.stdout.write(
  `${JSON.stringify({
    bench: 'ca',
    metric: 'certs/s',
    value: Math.round(vigilRate),
    peers: { 'webcrypto-keygen-sign': Math.round(peerRate) },
    ratios: { 'webcrypto-keygen-sign': round(median(passRatios)) },
    pass_ratios: passRatios.map((ratio) => round(ratio)),
    p99_us: round(percentile(vigilMicros, 99), 1),
    p50_us: round(percentile(vigilMicros, 50), 1),
    certs: CSRS,
    passes: PASSES,
    tbs_bytes: tbsBytes,
    forms: {
      vigil:
        'signDeviceCertificate: CSR size check, parse, key type, CSR signature verify, extension and SAN checks, P-256 sign; CSRs made before timing',
      'webcrypto-keygen-sign':
        'subtle.generateKey P-256 + subtle.sign ECDSA SHA-256 over a TBS-sized payload',
    },
  })}\n`,
);

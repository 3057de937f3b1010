import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { createAuditLog } from '../audit/index.ts';
import {
  type AuthorityInfo,
  CA_KEY_ALGORITHMS,
  CA_KEY_ENV,
  type CaKeyAlgorithm,
  CertificateAuthority,
  createCaKeyFile,
  type IssuedCertificate,
  loadCaSealingKey,
  MAX_CSR_BYTES,
  readTrustBundle,
} from '../ca/index.ts';
import { VigilError } from '../errors.ts';
import { systemClock } from '../internal/clock.ts';
import { parseDuration } from '../internal/duration.ts';
import type { Store } from '../store/index.ts';
import { DATABASE_HELP, type DatabaseFlag, withCliStore } from './database.ts';
import { printObject, printRows } from './output.ts';

/** Where the CLI looks for the database when neither --database nor VIGIL_DATABASE_URL is set. */
const KEY_FILE_HELP = `file with the key that seals CA private keys (mode 0600; default: $${CA_KEY_ENV})`;
/** Certificate and key files an operator hands to `ca import` stay small. */
const MAX_IMPORT_FILE_BYTES = 256 * 1024;

interface KeyFlag extends DatabaseFlag {
  keyFile?: string;
}
interface JsonFlag {
  json?: boolean;
}

async function withCa<T>(
  options: KeyFlag,
  work: (ca: CertificateAuthority, store: Store) => Promise<T>,
): Promise<T> {
  const sealingKey = loadCaSealingKey(options.keyFile);
  return withCliStore(options, 'write', async (store) => {
    const ca = await CertificateAuthority.open({ store, sealingKey });
    try {
      return await work(ca, store);
    } finally {
      ca.close();
    }
  });
}

function readInput(file: string, what: string, limit: number): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new VigilError('ERR_CLI_USAGE', `${file}: cannot read ${what}`, { cause: error });
  }
  if (bytes.length > limit)
    throw new VigilError('ERR_CLI_USAGE', `${file}: ${what} larger than ${limit} bytes`);
  return bytes.toString('utf8');
}

function duration(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0)
    throw new VigilError('ERR_CLI_USAGE', `${flag}: "${text}" is not a duration like 90s, 1h, 30d`);
  return ms;
}

function printAuthorities(authorities: readonly AuthorityInfo[], options: JsonFlag): void {
  printRows(
    authorities.map((authority) => ({
      kind: authority.kind,
      slot: authority.slot,
      id: authority.id,
      algorithm: authority.algorithm,
      not_after: authority.notAfter.toISOString(),
      bundle_until: authority.bundleUntil?.toISOString() ?? null,
      key_in_store: authority.keyInStore,
      fingerprint: `sha256:${authority.fingerprint}`,
      subject: authority.subject,
    })),
    [
      { key: 'kind', header: 'KIND' },
      { key: 'slot', header: 'SLOT' },
      { key: 'id', header: 'ID' },
      { key: 'algorithm', header: 'ALG' },
      { key: 'not_after', header: 'NOT AFTER' },
      { key: 'key_in_store', header: 'KEY IN STORE' },
      { key: 'fingerprint', header: 'FINGERPRINT' },
    ],
    options,
  );
}

async function init(
  options: KeyFlag &
    JsonFlag & {
      trustDomain: string;
      algorithm: string;
      rootKeyOut?: string;
      rootTtl?: string;
      intermediateTtl?: string;
    },
): Promise<void> {
  if (!(CA_KEY_ALGORITHMS as readonly string[]).includes(options.algorithm)) {
    throw new VigilError('ERR_CLI_USAGE', `--algorithm must be one of ${CA_KEY_ALGORITHMS.join(', ')}`);
  }
  const rootTtlMs = duration(options.rootTtl, '--root-ttl');
  const intermediateTtlMs = duration(options.intermediateTtl, '--intermediate-ttl');
  const created = options.keyFile !== undefined && !existsSync(options.keyFile);
  const sealingKey =
    created && options.keyFile !== undefined
      ? createCaKeyFile(options.keyFile)
      : loadCaSealingKey(options.keyFile);
  await withCliStore(options, 'write', async (store) => {
    const ca = await CertificateAuthority.initialize({
      store,
      sealingKey,
      trustDomain: options.trustDomain,
      algorithm: options.algorithm as CaKeyAlgorithm,
      ...(rootTtlMs !== undefined ? { rootTtlMs } : {}),
      ...(intermediateTtlMs !== undefined ? { intermediateTtlMs } : {}),
      ...(options.rootKeyOut !== undefined ? { rootKeyFile: options.rootKeyOut } : {}),
    });
    ca.close();
    if (!options.json) {
      if (created) process.stdout.write(`created CA key file ${options.keyFile} (mode 0600); back it up\n`);
      if (options.rootKeyOut)
        process.stdout.write(`root key written to ${options.rootKeyOut}; keep it offline\n`);
      process.stdout.write(`CA for trust domain ${ca.trustDomain} initialized\n`);
    }
    printAuthorities(ca.authorities(), options);
  });
}

async function importCa(
  options: KeyFlag & JsonFlag & { cert: string; key: string; trustDomain: string },
): Promise<void> {
  const sealingKey = loadCaSealingKey(options.keyFile);
  const certPem = readInput(options.cert, 'certificate file', MAX_IMPORT_FILE_BYTES);
  const keyPem = readInput(options.key, 'key file', MAX_IMPORT_FILE_BYTES);
  await withCliStore(options, 'write', async (store) => {
    const ca = await CertificateAuthority.importIntermediate({
      store,
      sealingKey,
      certPem,
      keyPem,
      trustDomain: options.trustDomain,
    });
    ca.close();
    printAuthorities(ca.authorities(), options);
  });
}

async function bundle(options: DatabaseFlag & { format: string }): Promise<void> {
  if (options.format !== 'pem' && options.format !== 'jwks')
    throw new VigilError('ERR_CLI_USAGE', '--format must be pem or jwks');
  await withCliStore(options, 'read', async (store) => {
    const trust = await readTrustBundle(store, systemClock);
    process.stdout.write(
      options.format === 'pem' ? trust.pem : `${JSON.stringify(await trust.jwks(), null, 2)}\n`,
    );
  });
}

async function status(options: DatabaseFlag & JsonFlag): Promise<void> {
  await withCliStore(options, 'read', async (store) => {
    const trust = await readTrustBundle(store, systemClock);
    if (!options.json) process.stdout.write(`trust domain: ${trust.trustDomain}\n`);
    printAuthorities(trust.authorities, options);
  });
}

async function issue(
  options: KeyFlag & JsonFlag & { kind: string; csr: string; id: string; ttl?: string; out?: string },
): Promise<void> {
  if (options.kind !== 'device' && options.kind !== 'workload') {
    throw new VigilError('ERR_CLI_USAGE', '--kind must be device or workload');
  }
  // Read with a margin so that the CA, not the CLI, refuses an oversized CSR with its own code.
  const csr = readInput(options.csr, 'CSR', MAX_CSR_BYTES * 4);
  const ttlMs = duration(options.ttl, '--ttl');
  await withCa(options, async (ca, store) => {
    const issued: IssuedCertificate =
      options.kind === 'device'
        ? await ca.signDeviceCertificate({
            csr,
            deviceId: options.id,
            ...(ttlMs !== undefined ? { ttlMs } : {}),
          })
        : await ca.signWorkloadCertificate({
            csr,
            spiffeId: options.id,
            ...(ttlMs !== undefined ? { ttlMs } : {}),
          });
    // Every certificate issued is an admin event in the audit log, whoever issued it.
    const audit = createAuditLog(store);
    audit.enqueue({
      kind: 'admin',
      time: Date.now(),
      actor: `cli:${userInfo().username}`,
      action: 'certificate.issued',
      target: issued.serial,
      details: { kind: issued.kind, spiffe_id: issued.spiffeId, not_after: issued.notAfter.toISOString() },
    });
    await audit.close();
    if (options.out) writeFileSync(options.out, issued.chainPem);
    if (options.json) {
      printObject(
        {
          serial: issued.serial,
          kind: issued.kind,
          spiffe_id: issued.spiffeId,
          not_before: issued.notBefore.toISOString(),
          not_after: issued.notAfter.toISOString(),
          renew_after: issued.renewAfter.toISOString(),
          issuer_id: issued.issuerId,
          chain_pem: issued.chainPem,
        },
        options,
      );
    } else if (options.out) {
      process.stdout.write(
        `${issued.spiffeId} serial ${issued.serial} until ${issued.notAfter.toISOString()} -> ${options.out}\n`,
      );
    } else {
      process.stdout.write(issued.chainPem);
    }
  });
}

async function revoke(serial: string, options: KeyFlag & JsonFlag & { reason: string }): Promise<void> {
  await withCa(options, async (ca) => {
    const revoked = await ca.revoke(serial, options.reason);
    printObject(
      { serial: revoked.serial, revoked_at: revoked.revokedAt.toISOString(), reason: revoked.reason },
      options,
    );
  });
}

async function crl(options: KeyFlag & { format: string; out?: string; issuer?: string }): Promise<void> {
  if (options.format !== 'pem' && options.format !== 'der')
    throw new VigilError('ERR_CLI_USAGE', '--format must be pem or der');
  await withCa(options, async (ca) => {
    const list = await ca.crl(options.issuer);
    const data = options.format === 'der' ? list.der : list.pem;
    if (options.out) writeFileSync(options.out, data);
    else process.stdout.write(data);
  });
}

async function rotate(
  step: string,
  options: KeyFlag & JsonFlag & { rootKeyFile?: string; intermediateTtl?: string },
): Promise<void> {
  if (step !== 'prepare' && step !== 'activate')
    throw new VigilError('ERR_CLI_USAGE', 'rotate takes prepare or activate');
  const ttlMs = duration(options.intermediateTtl, '--intermediate-ttl');
  await withCa(options, async (ca) => {
    if (step === 'prepare') {
      await ca.prepareNext({
        ...(options.rootKeyFile !== undefined ? { rootKeyFile: options.rootKeyFile } : {}),
        ...(ttlMs !== undefined ? { ttlMs } : {}),
      });
    } else {
      await ca.activateNext();
    }
    printAuthorities(ca.authorities(), options);
  });
}

/** Registers `vigil ca init|import|bundle|issue|revoke|crl|rotate|status`. */
export function registerCaCommand(program: Command): void {
  const ca = program
    .command('ca')
    .description('internal CA: root and intermediate, device and workload certificates, revocation');
  ca.command('init')
    .description('create the root and an online intermediate in the database')
    .requiredOption('--trust-domain <name>', 'SPIFFE trust domain, e.g. corp.example')
    .option('--key-file <path>', `${KEY_FILE_HELP}; created when missing`)
    .option('--algorithm <alg>', `CA key algorithm: ${CA_KEY_ALGORITHMS.join(' or ')}`, 'ecdsa-p256')
    .option(
      '--root-key-out <path>',
      'write the sealed root key to this file instead of the database (offline root)',
    )
    .option('--root-ttl <duration>', 'root lifetime (default 3650d)')
    .option('--intermediate-ttl <duration>', 'intermediate lifetime (default 365d)')
    .option('--database <url>', DATABASE_HELP)
    .option('--json', 'print JSON')
    .action(init);
  ca.command('import')
    .description('import an intermediate issued by an upstream CA (into the next slot if a CA exists)')
    .requiredOption('--cert <file>', 'PEM: the intermediate certificate followed by its root')
    .requiredOption('--key <file>', "PEM: the intermediate's PKCS#8 private key")
    .requiredOption('--trust-domain <name>', 'SPIFFE trust domain')
    .option('--key-file <path>', KEY_FILE_HELP)
    .option('--database <url>', DATABASE_HELP)
    .option('--json', 'print JSON')
    .action(importCa);
  ca.command('bundle')
    .description('print the trust bundle: root and live intermediates')
    .option('--format <format>', 'pem or jwks', 'pem')
    .option('--database <url>', DATABASE_HELP)
    .action(bundle);
  ca.command('issue')
    .description('sign a device or workload certificate from a CSR (for operators and tests)')
    .requiredOption('--kind <kind>', 'device or workload')
    .requiredOption('--csr <file>', 'PKCS#10 CSR, PEM')
    .requiredOption('--id <id>', 'device id, or the workload SPIFFE ID')
    .option('--ttl <duration>', 'lifetime (default 24h for devices, 1h for workloads)')
    .option('--out <file>', 'write the chain (leaf + intermediate) here instead of stdout')
    .option('--key-file <path>', KEY_FILE_HELP)
    .option('--database <url>', DATABASE_HELP)
    .option('--json', 'print JSON')
    .action(issue);
  ca.command('revoke')
    .description('revoke a certificate by serial; the CRL and every replica follow')
    .argument('<serial>', 'serial number, hex')
    .option(
      '--reason <reason>',
      'unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn',
      'unspecified',
    )
    .option('--key-file <path>', KEY_FILE_HELP)
    .option('--database <url>', DATABASE_HELP)
    .option('--json', 'print JSON')
    .action(revoke);
  ca.command('crl')
    .description('print the CRL of the current intermediate')
    .option('--format <format>', 'pem or der', 'pem')
    .option('--out <file>', 'write to a file instead of stdout')
    .option('--issuer <id>', 'intermediate id (default: the current one)')
    .option('--key-file <path>', KEY_FILE_HELP)
    .option('--database <url>', DATABASE_HELP)
    .action(crl);
  ca.command('rotate')
    .description('rotate the intermediate: prepare a next one (trusted at once), then activate it')
    .argument('<step>', 'prepare or activate')
    .option('--root-key-file <path>', 'sealed root key written by `ca init --root-key-out` (offline root)')
    .option('--intermediate-ttl <duration>', 'lifetime of the new intermediate (default 365d)')
    .option('--key-file <path>', KEY_FILE_HELP)
    .option('--database <url>', DATABASE_HELP)
    .option('--json', 'print JSON')
    .action(rotate);
  ca.command('status')
    .description('roots and intermediates: slots, expiry, fingerprints')
    .option('--database <url>', DATABASE_HELP)
    .option('--json', 'print JSON')
    .action(status);
}

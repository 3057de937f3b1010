import { createPublicKey, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  type AuditQuery,
  type AuditRecord,
  MAX_QUERY_LIMIT,
  parseAuditQuery,
  queryEvents,
  verifyChain,
} from '../audit/index.ts';
import { VigilError } from '../errors.ts';
import { systemClock } from '../internal/clock.ts';
import { DATABASE_HELP, type DatabaseFlag, withCliStore } from './database.ts';
import { printObject, printRows } from './output.ts';

/** Largest public key file read; a key is a few hundred bytes. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
/** Events per page while exporting. */
const EXPORT_PAGE = 5000;

interface FilterFlags {
  kind?: string;
  user?: string;
  device?: string;
  route?: string;
  session?: string;
  sourceIp?: string;
  decision?: string;
  reason?: string;
  risk?: string | boolean;
  since?: string;
  until?: string;
}

function readPublicKey(file: string): KeyObject {
  let text: string;
  try {
    const bytes = readFileSync(file);
    if (bytes.length > MAX_KEY_FILE_BYTES) throw new Error('file too large for a key');
    text = bytes.toString('utf8');
  } catch (error) {
    throw new VigilError('ERR_CLI_USAGE', `${file}: cannot read public key`, { cause: error });
  }
  try {
    const trimmed = text.trim();
    const key = trimmed.startsWith('{')
      ? createPublicKey({ key: JSON.parse(trimmed) as import('node:crypto').JsonWebKey, format: 'jwk' })
      : createPublicKey(trimmed);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('checkpoint keys are ES256 (EC P-256)');
    }
    return key;
  } catch (error) {
    throw new VigilError(
      'ERR_AUDIT_KEY_INVALID',
      `${file}: not an EC P-256 public key (PEM or JWK): ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

function filtersOf(flags: FilterFlags): AuditQuery {
  const params: Record<string, string | undefined> = {
    kind: flags.kind,
    user: flags.user,
    device: flags.device,
    route: flags.route,
    session: flags.session,
    sourceIp: flags.sourceIp,
    decision: flags.decision,
    reason: flags.reason,
    since: flags.since,
    until: flags.until,
    risk: flags.risk === true ? 'any' : flags.risk === false ? undefined : flags.risk,
  };
  try {
    return parseAuditQuery(params, systemClock.now());
  } catch (error) {
    throw new VigilError('ERR_CLI_USAGE', `--${(error as Error).message}`, { cause: error });
  }
}

/** `vigil audit verify`: walks the chain; exit 1 naming the first broken event. */
async function verify(options: DatabaseFlag & { publicKey?: string; json?: boolean }): Promise<void> {
  const publicKey = options.publicKey ? readPublicKey(options.publicKey) : undefined;
  const result = await withCliStore(options, 'read', (store) =>
    verifyChain(store, publicKey ? { publicKey } : {}),
  );
  const { problem, ...summary } = result;
  printObject(
    {
      ...summary,
      ...(problem ? { brokenAt: problem.seq, problem: problem.kind, detail: problem.message } : {}),
    },
    options,
  );
  if (problem) {
    throw new VigilError(
      'ERR_AUDIT_CHAIN_BROKEN',
      `audit chain broken at event ${problem.seq} (${problem.kind}): ${problem.message}`,
    );
  }
  if (!publicKey && !options.json) {
    process.stderr.write('note: checkpoint signatures not checked (pass --public-key to check them)\n');
  }
}

const iso = (time: unknown) => (typeof time === 'number' ? new Date(time).toISOString() : '-');

function describe(record: AuditRecord): { who: string; what: string; outcome: string; why: string } {
  switch (record.kind) {
    case 'decision':
      return {
        who: record.user ?? record.sourceIp,
        what: `${record.method} ${record.route ?? '-'} ${record.path}`,
        outcome: record.decision,
        why: [record.rule ?? '', ...record.reasons].filter(Boolean).join(' '),
      };
    case 'admin':
      return { who: record.actor, what: `${record.action} ${record.target}`, outcome: '-', why: '' };
    case 'alert':
      return {
        who: record.user ?? record.sourceIp ?? record.key,
        what: record.detector,
        outcome: record.severity,
        why: record.summary,
      };
  }
}

/** `vigil audit query`: newest first; a table, `--json` (array) or `--jsonl` (one event a line). */
async function query(
  options: DatabaseFlag & FilterFlags & { limit?: string; json?: boolean; jsonl?: boolean },
): Promise<void> {
  const filters = filtersOf(options);
  if (options.limit !== undefined) {
    const limit = Number(options.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
      throw new VigilError('ERR_CLI_USAGE', `--limit must be between 1 and ${MAX_QUERY_LIMIT}`);
    }
    filters.limit = limit;
  }
  if (options.json && options.jsonl)
    throw new VigilError('ERR_CLI_USAGE', '--json and --jsonl exclude each other');
  const page = await withCliStore(options, 'read', (store) => queryEvents(store, filters));
  if (options.jsonl) {
    for (const event of page.events) process.stdout.write(`${JSON.stringify(event)}\n`);
    return;
  }
  if (options.json) {
    printRows(page.events, [], options);
    return;
  }
  const rows = page.events.map((event) => ({
    seq: event.seq,
    time: iso(event.time),
    kind: event.kind,
    ...describe(event),
    risk: 'risk' in event && event.risk ? event.risk.join(',') : '',
  }));
  printRows(
    rows,
    [
      { key: 'seq', header: 'SEQ' },
      { key: 'time', header: 'TIME' },
      { key: 'kind', header: 'KIND' },
      { key: 'who', header: 'WHO' },
      { key: 'what', header: 'WHAT' },
      { key: 'outcome', header: 'OUTCOME' },
      { key: 'why', header: 'WHY' },
      { key: 'risk', header: 'RISK' },
    ],
    options,
  );
}

/** `vigil audit export --out FILE`: every matching event, oldest first, one JSON object a line. */
async function exportEvents(options: DatabaseFlag & FilterFlags & { out: string }): Promise<void> {
  const filters: AuditQuery = { ...filtersOf(options), order: 'asc', limit: EXPORT_PAGE };
  // Audit data names people and devices: the file is readable by its owner only.
  const out = createWriteStream(options.out, { mode: 0o600, flags: 'w' });
  const opened = once(out, 'open');
  opened.catch(() => {});
  let count = 0;
  try {
    await opened;
    await withCliStore(options, 'read', async (store) => {
      let after: number | undefined;
      // Bounded by the table: each page moves the cursor forward or ends the loop.
      for (;;) {
        const page = await queryEvents(
          store,
          after === undefined ? filters : { ...filters, afterSeq: after },
        );
        for (const event of page.events) {
          if (!out.write(`${JSON.stringify(event)}\n`)) await once(out, 'drain');
        }
        count += page.events.length;
        if (page.next === undefined) break;
        after = page.next;
      }
    });
  } catch (error) {
    out.destroy();
    if ((error as NodeJS.ErrnoException).syscall === 'open') {
      throw new VigilError('ERR_CLI_USAGE', `${options.out}: cannot write export file`, { cause: error });
    }
    throw error;
  }
  out.end();
  await once(out, 'finish');
  process.stderr.write(`exported ${count} events to ${options.out}\n`);
}

function addFilters(command: Command): Command {
  return command
    .option('--kind <kind>', 'decision, admin or alert')
    .option('--user <id>', 'user id (<idp>:<subject>)')
    .option('--device <id>', 'device id')
    .option('--route <id>', 'route id')
    .option('--session <id>', 'session or token id')
    .option('--source-ip <ip>', 'source IP address')
    .option('--decision <effect>', 'allow or deny')
    .option('--reason <reason>', 'a decision reason, e.g. device-posture-failed')
    .option('--risk [flag]', 'events with this risk flag, or any flag when no value is given')
    .option('--since <when>', 'from: a duration back from now (24h, 15m), an ISO time or epoch ms')
    .option('--until <when>', 'until (exclusive), same forms as --since');
}

/** `vigil audit verify|query|export`. */
export function registerAuditCommand(program: Command): void {
  const audit = program
    .command('audit')
    .description('Inspect, verify and export the tamper-evident audit log');
  audit
    .command('verify')
    .description('Check the hash chain and signed checkpoints; exit 1 naming the first broken event')
    .option('--database <url>', DATABASE_HELP)
    .option(
      '--public-key <file>',
      'checkpoint key to verify signatures: public key PEM or JWK (the private PEM works too)',
    )
    .option('--json', 'print the result as JSON')
    .action((options: DatabaseFlag & { publicKey?: string; json?: boolean }) => verify(options));
  addFilters(
    audit
      .command('query')
      .description('List audit events, newest first')
      .option('--database <url>', DATABASE_HELP)
      .option('--limit <n>', `at most this many events (default 100, max ${MAX_QUERY_LIMIT})`)
      .option('--json', 'print a JSON array')
      .option('--jsonl', 'print one JSON event per line'),
  ).action((options: DatabaseFlag & FilterFlags & { limit?: string; json?: boolean; jsonl?: boolean }) =>
    query(options),
  );
  addFilters(
    audit
      .command('export')
      .description('Write matching events, oldest first, to a JSONL file')
      .requiredOption('--out <file>', 'JSONL file to write (created with mode 0600)')
      .option('--database <url>', DATABASE_HELP),
  ).action((options: DatabaseFlag & FilterFlags & { out: string }) => exportEvents(options));
}

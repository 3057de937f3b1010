import type { Command } from 'commander';
import { type AuditRecord, queryEvents } from '../audit/index.ts';
import { loadConfig } from '../config/index.ts';
import { VigilError } from '../errors.ts';
import { parseDuration } from '../internal/duration.ts';
import { compilePolicies, parsePolicyFile, type RecordedDecision, replayDecisions } from '../policy/index.ts';
import { routeSpecs } from '../server/index.ts';
import { withCliStore } from './database.ts';
import { type OutputOptions, printRows } from './output.ts';

/** Events read per page from the audit log. */
const PAGE = 5000;

interface ReplayOptions extends OutputOptions {
  policy: string[];
  since: string;
  config?: string;
  database?: string;
}

/** `vigil policy replay`: which logged decisions a draft policy would change. */
export function registerPolicyReplay(policy: Command): void {
  policy
    .command('replay')
    .description('re-decide logged requests with a draft policy and report the decisions that would change')
    .requiredOption('--policy <files...>', 'the draft policy files')
    .option('--since <duration>', 'how far back in the audit log (e.g. 24h, 7d)', '7d')
    .option(
      '--config <path>',
      'vigil.yaml whose routes the draft guards (default: routes in the policy files)',
    )
    .option('--database <url>', 'database with the audit log (default: $VIGIL_DATABASE_URL or ./.vigil-data)')
    .option('--json', 'print the report as JSON')
    .action(async (options: ReplayOptions) => {
      const back = parseDuration(options.since);
      if (back === undefined)
        throw new VigilError(
          'ERR_CLI_USAGE',
          `--since must be a duration like 24h or 7d (got "${options.since}")`,
        );
      const documents = options.policy.map((file) => parsePolicyFile(file));
      const loaded = options.config ? loadConfig(options.config) : undefined;
      const draft = compilePolicies(
        documents,
        loaded ? { routes: routeSpecs(loaded.config.routes, loaded.path) } : {},
      );
      const since = Date.now() - back;
      const records: RecordedDecision[] = [];
      await withCliStore(options, 'read', async (store) => {
        let afterSeq: number | undefined;
        for (;;) {
          const page = await queryEvents(store, {
            kind: 'decision',
            since,
            order: 'asc',
            limit: PAGE,
            ...(afterSeq !== undefined ? { afterSeq } : {}),
          });
          for (const event of page.events) {
            const recorded = recordedDecision(event);
            if (recorded) records.push(recorded);
          }
          if (page.next === undefined) break;
          afterSeq = page.next;
        }
      });
      const report = replayDecisions(draft, records);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `Replayed ${report.replayed} logged decisions since ${new Date(since).toISOString()}: ` +
          `${report.changed} would change${report.skipped ? ` (${report.skipped} could not be replayed)` : ''}.\n`,
      );
      if (report.changes.length === 0) return;
      printRows(
        report.changes.map((change) => ({ ...change, change: `${change.before} → ${change.after}` })),
        [
          { key: 'route', header: 'ROUTE' },
          { key: 'user', header: 'USER' },
          { key: 'change', header: 'CHANGE' },
          { key: 'count', header: 'REQUESTS' },
          { key: 'rule', header: 'DRAFT RULE' },
          { key: 'reasons', header: 'REASONS', format: (value) => (value as readonly string[]).join(',') },
          { key: 'examplePath', header: 'EXAMPLE' },
        ],
        options,
      );
    });
}

function recordedDecision(record: AuditRecord): RecordedDecision | undefined {
  if (record.kind !== 'decision') return undefined;
  return {
    time: record.time,
    ...(record.host !== undefined ? { host: record.host } : {}),
    route: record.route,
    method: record.method,
    path: record.path,
    sourceIp: record.sourceIp,
    user: record.user,
    ...(record.groups !== undefined ? { groups: record.groups } : {}),
    ...(record.amr !== undefined ? { amr: record.amr } : {}),
    ...(record.authTime !== undefined ? { authTime: record.authTime } : {}),
    decision: record.decision,
  };
}

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { isVigilError, VigilError } from '../errors.ts';
import { systemClock } from '../internal/clock.ts';
import {
  checkPolicies,
  compilePolicies,
  type Finding,
  type PolicyDocument,
  parsePolicyInput,
  parsePolicyText,
  parseTestFile,
  runPolicyTests,
} from '../policy/index.ts';
import { printObject, printRows } from './output.ts';
import { registerPolicyReplay } from './policy-replay.ts';

interface JsonFlag {
  json?: boolean;
}

const isTestFile = (file: string) => /\.test\.ya?ml$/.test(file);

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new VigilError('ERR_CLI_USAGE', `${file}: cannot read ${what}`, { cause: error });
  }
}

function loadPolicies(files: readonly string[]): PolicyDocument[] {
  return files.map((file) => parsePolicyText(readText(file, 'policy file'), file));
}

/** `vigil policy check FILES`: schema and static checks; exit 1 when any error is found. */
function check(files: string[], options: JsonFlag): void {
  const findings: Finding[] = [];
  const documents: PolicyDocument[] = [];
  for (const file of files.filter((name) => !isTestFile(name))) {
    const text = readText(file, 'policy file');
    try {
      documents.push(parsePolicyText(text, file));
    } catch (error) {
      if (!isVigilError(error, 'ERR_POLICY_INVALID')) throw error;
      for (const line of error.message.split('\n')) {
        const space = line.indexOf(' ');
        findings.push({
          severity: 'error',
          code: 'schema-error',
          location: line.slice(0, space),
          message: line.slice(space + 1),
        });
      }
    }
  }
  if (documents.length > 0) findings.push(...checkPolicies(documents, { clock: systemClock }));
  const errors = findings.filter((finding) => finding.severity === 'error').length;
  if (options.json || findings.length > 0) {
    printRows(
      findings as unknown as Record<string, unknown>[],
      [
        { key: 'severity', header: 'SEVERITY' },
        { key: 'code', header: 'CODE' },
        { key: 'location', header: 'WHERE' },
        { key: 'message', header: 'MESSAGE' },
      ],
      options,
    );
  } else {
    const policies = documents.reduce((count, document) => count + document.spec.policies.length, 0);
    const routes = documents.reduce((count, document) => count + document.spec.routes.length, 0);
    process.stdout.write(`ok: ${documents.length} files, ${policies} policies, ${routes} routes\n`);
  }
  if (errors > 0) {
    throw new VigilError(
      'ERR_POLICY_INVALID',
      `policy check found ${errors} error${errors === 1 ? '' : 's'}`,
    );
  }
}

/** `vigil policy test FILES`: runs *.test.yaml cases against the policy files; exit 1 on any failure. */
function test(files: string[], options: JsonFlag): void {
  const testFiles = files.filter(isTestFile);
  if (testFiles.length === 0) throw new VigilError('ERR_CLI_USAGE', 'no *.test.yaml file given');
  const shared = files.filter((file) => !isTestFile(file));
  const now = systemClock.now();
  const rows: {
    result: string;
    test: string;
    location: string;
    message: string;
    rule: string | null;
    reasons: string;
  }[] = [];
  for (const file of testFiles) {
    const parsed = parseTestFile(readText(file, 'test file'), file, now);
    const policyFiles = parsed.policyFiles?.map((name) => resolve(dirname(file), name)) ?? shared;
    if (policyFiles.length === 0) {
      throw new VigilError(
        'ERR_CLI_USAGE',
        `${file}: no policy files (name them on the command line or in policy_files)`,
      );
    }
    const set = compilePolicies(loadPolicies(policyFiles), { clock: systemClock });
    for (const result of runPolicyTests(set, parsed.cases)) {
      rows.push({
        result: result.passed ? 'ok' : 'FAIL',
        test: result.name,
        location: result.location,
        message: result.message,
        rule: result.decision.rule,
        reasons: result.decision.reasons.join(','),
      });
    }
  }
  printRows(
    rows,
    [
      { key: 'result', header: 'RESULT' },
      { key: 'test', header: 'TEST' },
      { key: 'location', header: 'WHERE' },
      { key: 'message', header: 'MESSAGE' },
    ],
    options,
  );
  const failed = rows.filter((row) => row.result !== 'ok');
  if (failed.length > 0) {
    const first = failed[0] as (typeof failed)[number];
    throw new VigilError(
      'ERR_POLICY_TEST_FAILED',
      `${failed.length} of ${rows.length} policy tests failed; first: ${first.location} "${first.test}": ${first.message}`,
    );
  }
  if (!options.json) process.stdout.write(`${rows.length} tests passed\n`);
}

/** `vigil policy eval --policy FILE --input req.json`: the decision and its explain trace. */
function evaluate(options: JsonFlag & { policy: string[]; input: string }): void {
  const set = compilePolicies(loadPolicies(options.policy), { clock: systemClock });
  let raw: unknown;
  try {
    raw = JSON.parse(readText(options.input, 'input file'));
  } catch (error) {
    if (isVigilError(error)) throw error;
    throw new VigilError('ERR_CLI_USAGE', `${options.input}: not valid JSON`, { cause: error });
  }
  const input = parsePolicyInput(raw, systemClock.now(), options.input);
  const decision = set.decide(input, { explain: true });
  if (options.json) {
    printObject({ ...decision }, options);
    return;
  }
  const { explain, ...verdict } = decision;
  const route = explain?.route;
  printObject(
    {
      ...verdict,
      reasons: verdict.reasons.join(', ') || '-',
      route: route ? `${route.host}${route.pathPrefix} -> ${route.policy}` : '-',
    },
    options,
  );
  process.stdout.write('\n');
  printRows(
    (explain?.rules ?? []).map((rule) => ({
      rule: rule.rule,
      effect: rule.effect,
      matched: rule.matched ? 'yes' : 'no',
      state: rule.state,
      failed: rule.failed
        .map((item) => `${item.path} (${item.state}: ${item.reasons.join(', ')})`)
        .join('; '),
    })),
    [
      { key: 'rule', header: 'RULE' },
      { key: 'effect', header: 'EFFECT' },
      { key: 'matched', header: 'MATCHED' },
      { key: 'state', header: 'STATE' },
      { key: 'failed', header: 'NOT HOLDING' },
    ],
    options,
  );
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Registers `vigil policy check|test|eval`. */
export function registerPolicyCommand(program: Command): void {
  const policy = program
    .command('policy')
    .description('policy as code: check, test and evaluate policy files');
  registerPolicyReplay(policy);
  policy
    .command('check')
    .description('validate policy files: schema, unknown fields, unreachable or shadowed rules, routes')
    .argument('<files...>', 'policy YAML files')
    .option('--json', 'print findings as JSON')
    .action((files: string[], options: JsonFlag) => check(files, options));
  policy
    .command('test')
    .description('run *.test.yaml cases (request -> expected decision) against policy files')
    .argument('<files...>', 'policy files and *.test.yaml files')
    .option('--json', 'print results as JSON')
    .action((files: string[], options: JsonFlag) => test(files, options));
  policy
    .command('eval')
    .description('decide one request (JSON PolicyInput) and explain every rule')
    .requiredOption('--policy <file>', 'policy YAML file (repeatable)', collect)
    .requiredOption('--input <file>', 'request as JSON')
    .option('--json', 'print as JSON')
    .action((options: JsonFlag & { policy: string[]; input: string }) => evaluate(options));
}

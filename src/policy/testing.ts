import type { z } from 'zod';
import { VigilError } from '../errors.ts';
import type { CompiledPolicySet } from './compile.ts';
import { parseYaml } from './parse.ts';
import { inputSchema, testFileSchema } from './schema.ts';
import type { Decision, Effect, Mode, PolicyInput } from './types.ts';

export interface PolicyTestCase {
  readonly name: string;
  readonly location: string;
  readonly input: PolicyInput;
  readonly expect: {
    readonly effect: Effect;
    readonly rule?: string | null;
    readonly reasons?: readonly string[];
    readonly mode?: Mode;
  };
}

export interface PolicyTestFile {
  readonly file: string;
  /** Policy files named by the test file, resolved against its folder by the caller. */
  readonly policyFiles: readonly string[] | undefined;
  readonly cases: readonly PolicyTestCase[];
}

export interface TestResult {
  readonly name: string;
  readonly location: string;
  readonly passed: boolean;
  readonly decision: Decision;
  /** Empty when passed; otherwise "expected allow (rule x), got deny (rule y) reasons: group-missing". */
  readonly message: string;
}

type RawInput = z.infer<typeof inputSchema>;

function toInput(raw: RawInput, now: number): PolicyInput {
  const input: PolicyInput = { ...raw, now: raw.now ?? now } as PolicyInput;
  if (raw.headers !== undefined) {
    input.headers = Object.fromEntries(
      Object.entries(raw.headers).map(([name, value]) => [name.toLowerCase(), value]),
    );
  }
  return input;
}

/** Validates a JSON request (for `vigil policy eval`); times may be epoch ms or ISO strings. */
export function parsePolicyInput(value: unknown, now: number, source = 'input'): PolicyInput {
  const result = inputSchema.safeParse(value);
  if (!result.success) {
    const detail = result.error.issues.map(
      (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
    throw new VigilError('ERR_POLICY_INPUT_INVALID', `${source}: ${detail.join('; ')}`, { status: 400 });
  }
  return toInput(result.data, now);
}

/** Parses a `*.test.yaml` file; `now` is used by cases that set no time of their own. */
export function parseTestFile(text: string, fileName: string, now: number): PolicyTestFile {
  const { value, locate } = parseYaml(text, fileName, testFileSchema);
  const fileNow = value.now ?? now;
  return {
    file: fileName,
    policyFiles: value.policy_files,
    cases: value.tests.map((test, index) => ({
      name: test.name,
      location: locate(['tests', index]),
      input: toInput(test.request, fileNow),
      expect: test.expect,
    })),
  };
}

const describe = (effect: string, rule: string | null | undefined) =>
  rule === undefined ? effect : `${effect} (rule ${rule ?? 'none'})`;

/** Runs test cases against a compiled set; a case checks only what its `expect` names. */
export function runPolicyTests(set: CompiledPolicySet, cases: readonly PolicyTestCase[]): TestResult[] {
  return cases.map((test) => {
    const decision = set.decide(test.input);
    const expect = test.expect;
    const problems: string[] = [];
    const effectWrong = decision.effect !== expect.effect;
    const ruleWrong = expect.rule !== undefined && decision.rule !== expect.rule;
    if (effectWrong || ruleWrong) {
      problems.push(
        `expected ${describe(expect.effect, expect.rule)}, got ${describe(decision.effect, decision.rule)} reasons: ${decision.reasons.join(', ') || '-'}`,
      );
    }
    if (expect.reasons !== undefined) {
      const want = [...expect.reasons].sort();
      const got = [...decision.reasons].sort();
      if (want.join(',') !== got.join(',')) {
        const missing = want.filter((reason) => !got.includes(reason as never));
        const extra = got.filter((reason) => !want.includes(reason));
        problems.push(
          `expected reasons [${want.join(', ')}], got [${got.join(', ')}]` +
            (missing.length > 0 ? ` (missing: ${missing.join(', ')})` : '') +
            (extra.length > 0 ? ` (unexpected: ${extra.join(', ')})` : ''),
        );
      }
    }
    if (expect.mode !== undefined && decision.mode !== expect.mode) {
      problems.push(`expected mode ${expect.mode}, got ${decision.mode}`);
    }
    return {
      name: test.name,
      location: test.location,
      passed: problems.length === 0,
      decision,
      message: problems.join('; '),
    };
  });
}

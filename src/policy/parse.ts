import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { VigilError } from '../errors.ts';
import { type DocumentSpec, documentSchema } from './schema.ts';

export type IssuePath = readonly PropertyKey[];

/** A validated policy file and the means to point back into it. */
export interface PolicyDocument {
  readonly file: string;
  readonly spec: DocumentSpec;
  /** "file:line" of the node at `path` (or of its nearest existing parent). */
  locate(path: IssuePath): string;
}

/** "policies[2].rules[0].allow" */
export function formatPath(path: IssuePath): string {
  let out = '';
  for (const step of path) {
    if (typeof step === 'number') out += `[${step}]`;
    else out += out === '' ? String(step) : `.${String(step)}`;
  }
  return out;
}

function nodeAt(root: unknown, path: IssuePath, lastKey?: string): Node | undefined {
  let node = root as Node | undefined;
  let found = node;
  const steps = lastKey === undefined ? path : [...path, lastKey];
  for (let index = 0; index < steps.length; index++) {
    const step = steps[index];
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(step));
      if (pair === undefined) break;
      // An unknown key is best shown on the key itself.
      if (index === steps.length - 1 && lastKey !== undefined) return pair.key as Node;
      node = (pair.value ?? pair.key) as Node;
    } else if (isSeq(node) && typeof step === 'number') {
      node = node.items[step] as Node | undefined;
      if (node === undefined) break;
    } else {
      break;
    }
    found = node;
  }
  return found;
}

interface Flat {
  path: IssuePath;
  message: string;
  key?: string;
}

/** zod reports a failed union as one issue holding each branch's issues; keep the branch that got furthest. */
function flatten(issues: readonly z.core.$ZodIssue[], prefix: IssuePath = []): Flat[] {
  const out: Flat[] = [];
  // An object with an unknown key also fails its own refinements; the unknown key is the news.
  const unknownAt = new Set(
    issues.filter((issue) => issue.code === 'unrecognized_keys').map((issue) => formatPath(issue.path)),
  );
  for (const issue of issues) {
    if (issue.code === 'custom' && unknownAt.has(formatPath(issue.path))) continue;
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const deep = issue.errors.find((branch) =>
        branch.some(
          (inner) =>
            inner.path.length > 0 || (inner.code !== 'invalid_type' && inner.code !== 'invalid_value'),
        ),
      );
      if (deep !== undefined) {
        out.push(...flatten(deep, path));
        continue;
      }
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path, key, message: `unknown field "${key}"` });
      continue;
    }
    out.push({ path, message: issue.message.replace(/^Invalid input: /, '') });
  }
  return out;
}

/**
 * Validates YAML text against a zod schema; every problem is reported as
 * "file:line dotted.path: message", all of them in one error.
 */
export function parseYaml<T>(
  text: string,
  fileName: string,
  schema: z.ZodType<T>,
): { value: T; locate: (path: IssuePath) => string } {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  if (document.errors.length > 0) {
    const lines = document.errors.map(
      (error) => `${fileName}:${lineOf(error.pos[0])} ${error.message.split('\n')[0] ?? 'malformed YAML'}`,
    );
    throw new VigilError('ERR_POLICY_INVALID', lines.join('\n'), { publicMessage: 'invalid policy' });
  }
  const locate = (path: IssuePath, key?: string): string => {
    const node = nodeAt(document.contents, path, key);
    return `${fileName}:${node?.range ? lineOf(node.range[0]) : 1}`;
  };
  const result = schema.safeParse(document.toJS({ maxAliasCount: 100 }) ?? {});
  if (!result.success) {
    const lines = flatten(result.error.issues).map((issue) => {
      const full = issue.key === undefined ? issue.path : [...issue.path, issue.key];
      return `${locate(issue.path, issue.key)} ${formatPath(full) || '(root)'}: ${issue.message}`;
    });
    throw new VigilError('ERR_POLICY_INVALID', lines.join('\n'), { publicMessage: 'invalid policy' });
  }
  return { value: result.data, locate: (path) => locate(path) };
}

/** Parses and validates policy YAML; throws VigilError('ERR_POLICY_INVALID') naming file:line and field. */
export function parsePolicyText(text: string, fileName: string): PolicyDocument {
  const { value, locate } = parseYaml(text, fileName, documentSchema);
  return Object.freeze({ file: fileName, spec: value, locate });
}

export function parsePolicyFile(path: string): PolicyDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new VigilError('ERR_POLICY_INVALID', `${path}: cannot read policy file`, { cause: error });
  }
  return parsePolicyText(text, path);
}

import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';

/** One problem in a YAML source, located for a person: "file:line path: message". */
export interface SourceProblem {
  file: string;
  line: number;
  path: string;
  message: string;
}

export function formatProblem(problem: SourceProblem): string {
  const where = problem.line > 0 ? `${problem.file}:${problem.line}` : problem.file;
  return problem.path ? `${where} ${problem.path}: ${problem.message}` : `${where}: ${problem.message}`;
}

/**
 * A parsed YAML file that remembers where each value came from, so that a schema error
 * on a value can name the line a person must edit.
 */
export class YamlSource {
  readonly file: string;
  readonly #document: Document;
  readonly #lines: LineCounter;

  private constructor(file: string, document: Document, lines: LineCounter) {
    this.file = file;
    this.#document = document;
    this.#lines = lines;
  }

  /** Parses `text`; syntax errors come back as problems instead of a document. */
  static parse(text: string, file: string): { source: YamlSource } | { problems: SourceProblem[] } {
    const lines = new LineCounter();
    const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    if (document.errors.length > 0) {
      return {
        problems: document.errors.map((error) => ({
          file,
          line: lines.linePos(error.pos[0]).line,
          path: '',
          message: `invalid YAML: ${error.message.split('\n')[0]}`,
        })),
      };
    }
    return { source: new YamlSource(file, document, lines) };
  }

  /** The plain JS value of the document (undefined for an empty file). */
  value(): unknown {
    return this.#document.toJS({ maxAliasCount: 100 });
  }

  /** Line (1-based) of the value at `path`, or of its nearest existing ancestor. */
  lineOf(path: readonly PropertyKey[], key?: string): number {
    let node: unknown = this.#document.contents;
    let line = this.#lineOfNode(node);
    for (const segment of key === undefined ? path : [...path, key]) {
      const next = childOf(node, segment, segment === key);
      if (next === undefined) break;
      node = next;
      line = this.#lineOfNode(node) || line;
    }
    return line;
  }

  /** Turns zod issues into located problems, one per issue (one per unknown key). */
  problemsFrom(issues: readonly z.core.$ZodIssue[]): SourceProblem[] {
    const problems: SourceProblem[] = [];
    for (const issue of issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          problems.push({
            file: this.file,
            line: this.lineOf(issue.path, key),
            path: formatPath([...issue.path, key]),
            message: 'unknown field (check the spelling; see the configuration reference)',
          });
        }
        continue;
      }
      problems.push({
        file: this.file,
        line: this.lineOf(issue.path),
        path: formatPath(issue.path),
        message: issue.message,
      });
    }
    return problems;
  }

  #lineOfNode(node: unknown): number {
    const range = (node as Node | undefined)?.range;
    return range ? this.#lines.linePos(range[0]).line : 0;
  }
}

/** Finds a child node: a map value (or, for unknown keys, the key itself) or a sequence item. */
function childOf(node: unknown, segment: PropertyKey, wantKey: boolean): unknown {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : pair.key;
      if (String(key) === String(segment)) return wantKey ? pair.key : (pair.value ?? pair.key);
    }
    return undefined;
  }
  if (isSeq(node) && typeof segment === 'number') return node.items[segment];
  return undefined;
}

/** `['routes', 2, 'to']` → `routes[2].to`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

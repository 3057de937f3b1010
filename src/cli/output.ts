import { isVigilError } from '../errors.ts';

/** Options every data command accepts. */
export interface OutputOptions {
  json?: boolean;
}

export type Cell = string | number | boolean | null | undefined;

/**
 * The one printer: a table for people, JSON for scripts. `rows` are the same objects
 * in both cases, so `--json` never shows less than the table.
 */
export function printRows<T extends Record<string, unknown>>(
  rows: readonly T[],
  columns: readonly { key: keyof T & string; header: string; format?: (value: T[keyof T], row: T) => Cell }[],
  options: OutputOptions,
  write: (text: string) => void = (text) => process.stdout.write(text),
): void {
  if (options.json) {
    write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const cells = rows.map((row) =>
    columns.map((column) => {
      const value = column.format ? column.format(row[column.key], row) : (row[column.key] as Cell);
      return value === null || value === undefined ? '-' : String(value);
    }),
  );
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...cells.map((line) => line[index]?.length ?? 0)),
  );
  const render = (line: readonly string[]) =>
    line
      .map((cell, index) => cell.padEnd(widths[index] ?? 0))
      .join('  ')
      .trimEnd();
  write(`${render(columns.map((column) => column.header))}\n`);
  for (const line of cells) write(`${render(line)}\n`);
}

/** Prints one object: JSON with `--json`, "key: value" lines otherwise. */
export function printObject(
  value: Record<string, unknown>,
  options: OutputOptions,
  write: (text: string) => void = (text) => process.stdout.write(text),
): void {
  if (options.json) {
    write(`${JSON.stringify(value, null, 2)}\n`);
    return;
  }
  const width = Math.max(0, ...Object.keys(value).map((key) => key.length));
  for (const [key, field] of Object.entries(value)) {
    const shown = typeof field === 'object' && field !== null ? JSON.stringify(field) : String(field);
    write(`${`${key}:`.padEnd(width + 2)}${shown}\n`);
  }
}

/** Exit codes: 1 for a failure, 2 for a usage error (commander's own convention too). */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Renders an error as one line; the stack only with --debug. */
export function formatCliError(error: unknown, debug: boolean): string {
  if (debug && error instanceof Error && error.stack) return error.stack;
  if (isVigilError(error)) return `vigil: ${error.message}`;
  if (error instanceof Error) return `vigil: ${error.message}`;
  return `vigil: ${String(error)}`;
}

import type { Command } from 'commander';
import { VigilError, type VigilErrorCode } from '../errors.ts';
import { readSecretFile } from '../internal/secrets.ts';
import type { OutputOptions } from './output.ts';

/** How long one admin API call may take. */
const ADMIN_CALL_TIMEOUT_MS = 10_000;
const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8081';

export interface AdminOptions extends OutputOptions {
  server: string;
  tokenFile?: string;
}

function adminToken(options: AdminOptions): string {
  if (options.tokenFile !== undefined) {
    const read = readSecretFile(options.tokenFile);
    if ('value' in read) return read.value;
    throw new VigilError(
      'ERR_CLI_USAGE',
      `--token-file ${options.tokenFile}: ${read.problem === 'too-open' ? 'readable by group or others; run chmod 600' : read.problem}`,
    );
  }
  const fromEnv = process.env.VIGIL_ADMIN_TOKEN;
  if (fromEnv) return fromEnv;
  throw new VigilError('ERR_CLI_USAGE', 'give the admin token with --token-file PATH or VIGIL_ADMIN_TOKEN');
}

/** One admin API call; a non-2xx answer becomes a VigilError with the server's public message. */
export async function call(
  options: AdminOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const url = new URL(path, options.server.endsWith('/') ? options.server : `${options.server}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${adminToken(options)}`,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(ADMIN_CALL_TIMEOUT_MS),
    });
  } catch (error) {
    if (error instanceof VigilError) throw error;
    throw new VigilError(
      'ERR_CLI_USAGE',
      `cannot reach the admin API at ${url.origin}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const answer = (await response.json().catch(() => null)) as { error?: string; message?: string } | null;
  if (!response.ok) {
    // The server's own code when it sent one (ERR_DEVICE_NOT_FOUND …), so exit paths match.
    const code: VigilErrorCode =
      typeof answer?.error === 'string' && /^ERR_[A-Z_]+$/.test(answer.error)
        ? (answer.error as VigilErrorCode)
        : response.status === 401
          ? 'ERR_ADMIN_UNAUTHENTICATED'
          : 'ERR_HTTP_BAD_REQUEST';
    throw new VigilError(code, `${method} ${url.pathname}: ${response.status} ${answer?.message ?? 'error'}`);
  }
  return answer;
}

/** The flags of every command that calls the admin API of a running server. */
export function adminOptions(command: Command): Command {
  return command
    .option('--server <url>', 'admin API URL', process.env.VIGIL_ADMIN_URL ?? DEFAULT_ADMIN_URL)
    .option('--token-file <path>', 'admin token file (0600); or set VIGIL_ADMIN_TOKEN')
    .option('--json', 'print JSON');
}

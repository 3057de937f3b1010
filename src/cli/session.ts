import type { Command } from 'commander';
import { VigilError, type VigilErrorCode } from '../errors.ts';
import { readSecretFile } from '../internal/secrets.ts';
import { type OutputOptions, printObject, printRows } from './output.ts';

/** How long one admin API call may take. */
const ADMIN_CALL_TIMEOUT_MS = 10_000;
const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8081';

interface AdminOptions extends OutputOptions {
  server: string;
  tokenFile?: string;
}

interface SessionRow extends Record<string, unknown> {
  id: string;
  user_id: string;
  idp: string;
  groups: string[];
  amr: string[];
  device_id: string | null;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  revoked_at: string | null;
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
async function call(options: AdminOptions, method: string, path: string): Promise<unknown> {
  const url = new URL(path, options.server.endsWith('/') ? options.server : `${options.server}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${adminToken(options)}`, accept: 'application/json' },
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
  const body = (await response.json().catch(() => null)) as { error?: string; message?: string } | null;
  if (!response.ok) {
    const code: VigilErrorCode =
      response.status === 404 && body?.error === 'ERR_SESSION_NOT_FOUND'
        ? 'ERR_SESSION_NOT_FOUND'
        : response.status === 401
          ? 'ERR_ADMIN_UNAUTHENTICATED'
          : 'ERR_HTTP_BAD_REQUEST';
    throw new VigilError(code, `${method} ${url.pathname}: ${response.status} ${body?.message ?? 'error'}`);
  }
  return body;
}

async function list(
  options: AdminOptions & { user?: string; device?: string; all?: boolean },
): Promise<void> {
  const query = new URLSearchParams();
  if (options.user !== undefined) query.set('user', options.user);
  if (options.device !== undefined) query.set('device', options.device);
  if (options.all) query.set('all', '1');
  const body = (await call(options, 'GET', `api/v1/sessions?${query}`)) as { sessions: SessionRow[] };
  printRows(
    body.sessions,
    [
      { key: 'id', header: 'ID' },
      { key: 'user_id', header: 'USER' },
      { key: 'groups', header: 'GROUPS', format: (value) => (value as string[]).join(',') },
      { key: 'amr', header: 'AMR', format: (value) => (value as string[]).join(',') },
      { key: 'device_id', header: 'DEVICE' },
      { key: 'last_seen_at', header: 'LAST SEEN' },
      { key: 'expires_at', header: 'EXPIRES' },
      { key: 'revoked_at', header: 'REVOKED' },
    ],
    options,
  );
}

async function revoke(
  id: string | undefined,
  options: AdminOptions & { user?: string; device?: string },
): Promise<void> {
  const targets = [id, options.user, options.device].filter((value) => value !== undefined);
  if (targets.length !== 1) {
    throw new VigilError('ERR_CLI_USAGE', 'name exactly one of: a session ID, --user ID or --device ID');
  }
  const path =
    id !== undefined
      ? `api/v1/sessions/${encodeURIComponent(id)}`
      : options.user !== undefined
        ? `api/v1/users/${encodeURIComponent(options.user)}/revoke-sessions`
        : `api/v1/devices/${encodeURIComponent(options.device ?? '')}/revoke-sessions`;
  const body = (await call(options, id !== undefined ? 'DELETE' : 'POST', path)) as { revoked: number };
  printObject({ revoked: body.revoked }, options);
}

/** Registers `vigil session list|revoke`, which call the admin API of a running server. */
export function registerSessionCommand(program: Command): void {
  const session = program
    .command('session')
    .description('list and revoke login sessions on a running server');
  const common = (command: Command) =>
    command
      .option('--server <url>', 'admin API URL', process.env.VIGIL_ADMIN_URL ?? DEFAULT_ADMIN_URL)
      .option('--token-file <path>', 'admin token file (0600); or set VIGIL_ADMIN_TOKEN')
      .option('--json', 'print JSON');
  common(
    session
      .command('list')
      .description('list live sessions (with --all, ended ones too)')
      .option('--user <id>', 'only this user (idp:subject)')
      .option('--device <id>', 'only sessions bound to this device')
      .option('--all', 'include revoked and expired sessions'),
  ).action((options: AdminOptions & { user?: string; device?: string; all?: boolean }) => list(options));
  common(
    session
      .command('revoke')
      .description('revoke a session by id, every session of a user (logout everywhere) or of a device')
      .argument('[id]', 'session id')
      .option('--user <id>', 'revoke every session of this user (idp:subject)')
      .option('--device <id>', 'revoke every session bound to this device'),
  ).action((id: string | undefined, options: AdminOptions & { user?: string; device?: string }) =>
    revoke(id, options),
  );
}

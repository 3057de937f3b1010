import type { Command } from 'commander';
import { VigilError } from '../errors.ts';
import { type AdminOptions, adminOptions, call } from './admin-api.ts';
import { printObject, printRows } from './output.ts';

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
  const common = adminOptions;
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

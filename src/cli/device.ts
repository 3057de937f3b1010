import type { Command } from 'commander';
import { defaultDeviceDir, enrollDevice, loadDevice } from '../device/index.ts';
import { VigilError } from '../errors.ts';
import { parseDuration } from '../internal/duration.ts';
import { readSecretFile } from '../internal/secrets.ts';
import { type AdminOptions, adminOptions, call } from './admin-api.ts';
import { type OutputOptions, printObject, printRows } from './output.ts';

interface EnrollFlags extends OutputOptions {
  server: string;
  dir: string;
  name?: string;
  token?: string;
  tokenFile?: string;
  serverCa?: string;
  serial?: string;
}

interface DeviceRow extends Record<string, unknown> {
  id: string;
  name: string;
  user: string | null;
  platform: string | null;
  state: string;
  managed_by: string | null;
  cert_not_after: string | null;
  enrolled_at: string;
}

function enrollmentToken(flags: EnrollFlags): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined)
    throw new VigilError('ERR_CLI_USAGE', 'give --token or --token-file, not both');
  if (flags.tokenFile === undefined) return flags.token ?? process.env.VIGIL_ENROLLMENT_TOKEN;
  const read = readSecretFile(flags.tokenFile);
  if ('value' in read) return read.value;
  throw new VigilError('ERR_CLI_USAGE', `--token-file ${flags.tokenFile}: ${read.problem}`);
}

async function enroll(flags: EnrollFlags): Promise<void> {
  const token = enrollmentToken(flags);
  const say = (text: string) => process.stderr.write(`${text}\n`);
  const info = await enrollDevice({
    server: flags.server,
    dir: flags.dir,
    ...(flags.name !== undefined ? { name: flags.name } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(flags.serverCa !== undefined ? { serverCaFile: flags.serverCa } : {}),
    ...(flags.serial !== undefined ? { serial: flags.serial } : {}),
    onPrompt: (prompt) => {
      // Scripts read the same lines from stderr; stdout stays for the result.
      say(`To enroll this device, open ${prompt.verificationUriComplete}`);
      say(`and confirm the code ${prompt.userCode} (valid ${Math.round(prompt.expiresIn / 60)} min).`);
      say('Waiting for approval…');
    },
  });
  printObject(
    {
      device_id: info.device_id,
      state: info.state,
      spiffe_id: info.spiffe_id,
      certificate_expires: info.not_after,
      dir: flags.dir,
      next:
        info.state === 'managed'
          ? 'run vigil agent'
          : 'run vigil agent; an admin may approve the device (vigil device approve)',
    },
    flags,
  );
}

function status(flags: OutputOptions & { dir: string }): void {
  const device = loadDevice(flags.dir);
  const notAfter = Date.parse(device.certificate.validTo);
  const left = notAfter - Date.now();
  printObject(
    {
      device_id: device.info.device_id,
      server: device.info.server,
      // As the server last answered: enrollment, renewal or the agent's latest report.
      state: device.info.state,
      spiffe_id: device.info.spiffe_id,
      certificate_serial: device.info.serial,
      certificate_expires: new Date(notAfter).toISOString(),
      certificate:
        left > 0
          ? `valid for ${Math.round(left / 60_000)} min`
          : 'expired: run vigil agent --once or enroll again',
      renew_after: device.info.renew_after,
      dir: flags.dir,
    },
    flags,
  );
}

async function list(options: AdminOptions & { state?: string; user?: string }): Promise<void> {
  const query = new URLSearchParams();
  if (options.state !== undefined) query.set('state', options.state);
  if (options.user !== undefined) query.set('user', options.user);
  const body = (await call(options, 'GET', `api/v1/devices?${query}`)) as { devices: DeviceRow[] };
  printRows(
    body.devices,
    [
      { key: 'id', header: 'ID' },
      { key: 'name', header: 'NAME' },
      { key: 'user', header: 'USER' },
      { key: 'platform', header: 'PLATFORM' },
      { key: 'state', header: 'STATE' },
      { key: 'managed_by', header: 'MANAGED BY' },
      { key: 'cert_not_after', header: 'CERT EXPIRES' },
      { key: 'enrolled_at', header: 'ENROLLED' },
    ],
    options,
  );
}

/** Registers `vigil device enroll|status` (on the device) and `list|show|approve|revoke|token` (admin). */
export function registerDeviceCommand(program: Command): void {
  const device = program
    .command('device')
    .description('enroll this device; list, approve and revoke devices');
  device
    .command('enroll')
    .description('make a key here, get a device certificate (browser login, or --token from an admin)')
    .requiredOption('--server <url>', 'public URL of the Vigil proxy, e.g. https://vigil.example.com')
    .option('--dir <path>', 'where the key and certificate live', defaultDeviceDir())
    .option('--name <name>', 'name shown to admins (default: host name)')
    .option('--token <token>', 'enrollment token (or VIGIL_ENROLLMENT_TOKEN)')
    .option('--token-file <path>', 'file (0600) holding the enrollment token')
    .option('--server-ca <file>', 'PEM CA of the server certificate, when it is not publicly trusted')
    .option('--serial <serial>', 'hardware serial, for posture providers that report by serial')
    .option('--json', 'print JSON')
    .action((flags: EnrollFlags) => enroll(flags));
  device
    .command('status')
    .description('this device: id, certificate and when it renews')
    .option('--dir <path>', 'where the key and certificate live', defaultDeviceDir())
    .option('--json', 'print JSON')
    .action((flags: OutputOptions & { dir: string }) => status(flags));
  adminOptions(
    device
      .command('list')
      .description('devices of the inventory (admin API)')
      .option('--state <state>', 'registered, managed or revoked')
      .option('--user <id>', 'devices of this user (idp:subject)'),
  ).action((options: AdminOptions & { state?: string; user?: string }) => list(options));
  adminOptions(
    device.command('show').description('one device with its latest posture per source').argument('<id>'),
  ).action(async (id: string, options: AdminOptions) =>
    printObject(
      (await call(options, 'GET', `api/v1/devices/${encodeURIComponent(id)}`)) as Record<string, unknown>,
      options,
    ),
  );
  adminOptions(
    device.command('approve').description('mark a registered device managed').argument('<id>'),
  ).action(async (id: string, options: AdminOptions) =>
    printObject(
      (await call(options, 'POST', `api/v1/devices/${encodeURIComponent(id)}/approve`)) as Record<
        string,
        unknown
      >,
      options,
    ),
  );
  adminOptions(
    device
      .command('revoke')
      .description('revoke a device: its certificates, sessions and access, on every replica')
      .argument('<id>')
      .option('--reason <text>', 'why (kept in the audit log)', 'revoked by admin'),
  ).action(async (id: string, options: AdminOptions & { reason: string }) =>
    printObject(
      (await call(options, 'POST', `api/v1/devices/${encodeURIComponent(id)}/revoke`, {
        reason: options.reason,
      })) as Record<string, unknown>,
      options,
    ),
  );
  const token = device.command('token').description('enrollment tokens');
  adminOptions(
    token
      .command('create')
      .description('a token that enrolls devices without a login (shown once)')
      .option('--ttl <duration>', 'how long it can be used', '24h')
      .option('--uses <n>', 'how many devices it enrolls', '1')
      .option('--managed', 'devices enrolled with it start managed (you vouch for them)')
      .option('--note <text>', 'what it is for'),
  ).action(
    async (options: AdminOptions & { ttl: string; uses: string; managed?: boolean; note?: string }) => {
      const ttlMs = parseDuration(options.ttl);
      if (ttlMs === undefined)
        throw new VigilError('ERR_CLI_USAGE', `--ttl ${options.ttl}: use a duration like 24h or 30m`);
      const uses = Number(options.uses);
      if (!Number.isInteger(uses) || uses < 1)
        throw new VigilError('ERR_CLI_USAGE', '--uses must be a whole number ≥ 1');
      const created = (await call(options, 'POST', 'api/v1/devices/enrollment-tokens', {
        ttl_s: Math.round(ttlMs / 1000),
        uses,
        managed: options.managed === true,
        ...(options.note !== undefined ? { note: options.note } : {}),
      })) as Record<string, unknown>;
      printObject(created, options);
    },
  );
}

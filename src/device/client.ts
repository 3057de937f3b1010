import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher, fetch } from 'undici';
import { z } from 'zod';
import { createCertificateRequest } from '../ca/index.ts';
import { VigilError } from '../errors.ts';
import { DEVICE_PATHS } from './http.ts';

/** Where `vigil device enroll` keeps the device's key and certificate unless told otherwise. */
export function defaultDeviceDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env.VIGIL_DEVICE_DIR ?? join(homedir(), '.vigil', 'device');
}

const HTTP_TIMEOUT_MS = 15_000;

const issuedSchema = z.object({
  device_id: z.string(),
  state: z.enum(['registered', 'managed', 'revoked']),
  spiffe_id: z.string(),
  serial: z.string(),
  certificate: z.string(),
  ca_bundle: z.string(),
  not_after: z.string(),
  renew_after: z.string(),
});
type Issued = z.infer<typeof issuedSchema>;

/** Checks what the server sent for an enrollment or renewal. */
export function parseIssued(body: unknown): Issued {
  const parsed = issuedSchema.safeParse(body);
  if (!parsed.success) throw failed('the server answered an enrollment without a certificate');
  return parsed.data;
}

const deviceFileSchema = z.object({
  server: z.string().url(),
  device_id: z.string(),
  spiffe_id: z.string(),
  state: z.string(),
  serial: z.string(),
  not_after: z.string(),
  renew_after: z.string(),
  /** PEM file of the CA that signed the server's TLS certificate, when not a public one. */
  server_ca_file: z.string().optional(),
});
export type DeviceFile = z.infer<typeof deviceFileSchema>;

/** An enrolled device as its files on disk hold it. */
export interface EnrolledDevice {
  dir: string;
  info: DeviceFile;
  key: KeyObject;
  certificate: X509Certificate;
}

const FILES = { key: 'key.pem', cert: 'cert.pem', bundle: 'ca.pem', info: 'device.json' } as const;

function failed(message: string, cause?: unknown): VigilError {
  return new VigilError('ERR_DEVICE_ENROLL_FAILED', message, { cause });
}

/** Writes a file atomically with the given mode (rename over the old one). */
function writePrivate(path: string, content: string, mode: number): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}

export function loadDevice(dir: string): EnrolledDevice {
  const infoPath = join(dir, FILES.info);
  if (!existsSync(infoPath) || !existsSync(join(dir, FILES.key))) {
    throw new VigilError(
      'ERR_DEVICE_NOT_ENROLLED',
      `no enrolled device in ${dir}; run vigil device enroll --server URL`,
    );
  }
  let info: DeviceFile;
  try {
    info = deviceFileSchema.parse(JSON.parse(readFileSync(infoPath, 'utf8')));
  } catch (error) {
    throw new VigilError('ERR_DEVICE_NOT_ENROLLED', `${infoPath} is damaged; enroll again`, { cause: error });
  }
  return {
    dir,
    info,
    key: createPrivateKey(readFileSync(join(dir, FILES.key))),
    certificate: new X509Certificate(readFileSync(join(dir, FILES.cert))),
  };
}

/** Saves what the server issued: certificate chain, bundle and the device's facts. */
export function saveIssued(
  dir: string,
  server: string,
  issued: Issued,
  serverCaFile: string | undefined,
): DeviceFile {
  const info: DeviceFile = {
    server,
    device_id: issued.device_id,
    spiffe_id: issued.spiffe_id,
    state: issued.state,
    serial: issued.serial,
    not_after: issued.not_after,
    renew_after: issued.renew_after,
    ...(serverCaFile !== undefined ? { server_ca_file: serverCaFile } : {}),
  };
  writePrivate(join(dir, FILES.cert), issued.certificate, 0o644);
  writePrivate(join(dir, FILES.bundle), issued.ca_bundle, 0o644);
  writePrivate(join(dir, FILES.info), `${JSON.stringify(info, null, 2)}\n`, 0o600);
  return info;
}

/** Records the state the server last answered with, for `vigil device status`. */
export function saveState(device: EnrolledDevice, state: string): void {
  if (device.info.state === state) return;
  const info: DeviceFile = { ...device.info, state };
  writePrivate(join(device.dir, FILES.info), `${JSON.stringify(info, null, 2)}\n`, 0o600);
}

/** The HTTP client of the device: the server's own CA when its certificate is not public. */
export function deviceDispatcher(serverCaFile: string | undefined): Dispatcher | undefined {
  if (serverCaFile === undefined) return undefined;
  return new Agent({ connect: { ca: readFileSync(serverCaFile, 'utf8') } });
}

/** POSTs to the server and returns the parsed JSON with the status; network trouble becomes a clear error. */
export async function postToServer(
  server: string,
  path: string,
  body: string,
  options: { contentType: string; authorization?: string; dispatcher?: Dispatcher | undefined },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(path, server);
  let response: Awaited<ReturnType<typeof fetch>>;
  try {
    response = await fetch(url, {
      method: 'POST',
      body,
      headers: {
        'content-type': options.contentType,
        accept: 'application/json',
        ...(options.authorization ? { authorization: options.authorization } : {}),
      },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
  } catch (error) {
    const why = (error as { cause?: { code?: string; message?: string } }).cause;
    throw failed(
      `cannot reach ${url.origin}: ${why?.code ?? why?.message ?? (error as Error).message}`,
      error,
    );
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw failed(
      `${url.origin}${path} answered ${response.status} without JSON: is --server a Vigil proxy URL?`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null)
    throw failed(`${url.origin}${path} answered ${response.status}`);
  return { status: response.status, body: parsed as Record<string, unknown> };
}

/** What the server's refusal means for the device: revoked, or a failure with its message. */
export function refusedBy(server: string, status: number, body: Record<string, unknown>): VigilError {
  const detail = typeof body.message === 'string' ? body.message : String(body.error ?? 'refused');
  if (body.error === 'ERR_DEVICE_REVOKED')
    return new VigilError('ERR_DEVICE_REVOKED', `this device is revoked (${server}): ${detail}`);
  const hint = status === 404 ? ' (does the server have ca configured?)' : '';
  return failed(`${server} refused (${status}): ${detail}${hint}`);
}

export interface EnrollOptions {
  server: string;
  dir: string;
  name?: string;
  /** Enrollment token from an admin; without it the device authorization grant runs. */
  token?: string;
  serverCaFile?: string;
  serial?: string;
  /** Told the code and URL to show the user (device grant), and progress while waiting. */
  onPrompt?: (prompt: {
    userCode: string;
    verificationUri: string;
    verificationUriComplete: string;
    expiresIn: number;
  }) => void;
  onWaiting?: () => void;
  /** Waits between polls; a test may shorten it. */
  sleep?: (ms: number) => Promise<void>;
}

const authorizeSchema = z.object({
  device_code: z.string(),
  user_code: z.string(),
  verification_uri: z.string(),
  verification_uri_complete: z.string(),
  expires_in: z.number(),
  interval: z.number().int().positive().max(60),
});

/**
 * Enrolls this machine: a P-256 key made here (never leaves, file 0600), a CSR sent
 * with an enrollment token or through the device authorization grant, and the
 * certificate, chain and bundle saved next to the key.
 */
export async function enrollDevice(options: EnrollOptions): Promise<DeviceFile> {
  const server = new URL(options.server).origin;
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const name = options.name ?? hostname();
  const keyPath = join(options.dir, FILES.key);
  // A key left by an interrupted enrollment is reused; a fresh one otherwise.
  const existingKey = existsSync(keyPath) ? readFileSync(keyPath, 'utf8') : undefined;
  const { keyPem, csrPem } = await createCertificateRequest({
    commonName: name,
    ...(existingKey ? { keyPem: existingKey } : {}),
  });
  if (!existingKey) writePrivate(keyPath, keyPem, 0o600);
  const platform =
    process.platform === 'darwin' ? 'macos' : process.platform === 'linux' ? 'linux' : undefined;
  const request = JSON.stringify({
    csr: csrPem,
    name,
    ...(options.serial ? { serial: options.serial } : {}),
    ...(platform ? { platform } : {}),
  });
  const dispatcher = deviceDispatcher(options.serverCaFile);
  try {
    let issued: Issued;
    if (options.token !== undefined) {
      const answer = await postToServer(server, DEVICE_PATHS.enroll, request, {
        contentType: 'application/json',
        authorization: `Bearer ${options.token}`,
        dispatcher,
      });
      if (answer.status !== 200) throw refusedBy(server, answer.status, answer.body);
      issued = parseIssued(answer.body);
    } else {
      issued = await deviceGrant(server, request, dispatcher, options);
    }
    return saveIssued(options.dir, server, issued, options.serverCaFile);
  } finally {
    await dispatcher?.close();
  }
}

async function deviceGrant(
  server: string,
  request: string,
  dispatcher: Dispatcher | undefined,
  options: EnrollOptions,
): Promise<Issued> {
  const started = await postToServer(server, DEVICE_PATHS.authorize, request, {
    contentType: 'application/json',
    dispatcher,
  });
  if (started.status !== 200) throw refusedBy(server, started.status, started.body);
  const grant = authorizeSchema.parse(started.body);
  options.onPrompt?.({
    userCode: grant.user_code,
    verificationUri: grant.verification_uri,
    verificationUriComplete: grant.verification_uri_complete,
    expiresIn: grant.expires_in,
  });
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let intervalMs = grant.interval * 1000;
  const deadline = Date.now() + grant.expires_in * 1000;
  while (Date.now() < deadline + intervalMs) {
    await sleep(intervalMs);
    const answer = await postToServer(
      server,
      DEVICE_PATHS.token,
      JSON.stringify({ device_code: grant.device_code }),
      {
        contentType: 'application/json',
        dispatcher,
      },
    );
    if (answer.status === 200) return parseIssued(answer.body);
    switch (answer.body.error) {
      case 'authorization_pending':
        options.onWaiting?.();
        continue;
      case 'slow_down':
        intervalMs += 1000;
        continue;
      case 'access_denied':
        throw new VigilError('ERR_DEVICE_AUTHORIZATION', 'enrollment was denied in the browser');
      case 'expired_token':
        throw new VigilError(
          'ERR_DEVICE_AUTHORIZATION',
          'the code expired before it was approved; run vigil device enroll again',
        );
      default:
        throw refusedBy(server, answer.status, answer.body);
    }
  }
  throw new VigilError(
    'ERR_DEVICE_AUTHORIZATION',
    'the code expired before it was approved; run vigil device enroll again',
  );
}

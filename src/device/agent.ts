import type { Dispatcher } from 'undici';
import { createCertificateRequest } from '../ca/index.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import {
  deviceDispatcher,
  type EnrolledDevice,
  loadDevice,
  parseIssued,
  postToServer,
  refusedBy,
  saveIssued,
  saveState,
} from './client.ts';
import type { PostureData } from './data.ts';
import { DEVICE_PATHS } from './http.ts';
import { type CollectedPosture, type CollectOptions, collectPosture } from './posture/collect.ts';
import { POSTURE_REPORT_TYPE, RENEWAL_REQUEST_TYPE, signDeviceRequest } from './report.ts';

/** Longest evidence line sent per check; the server refuses longer ones. */
const MAX_EVIDENCE = 500;

export interface AgentRun {
  posture: PostureData;
  /** What the server answered: the device's state. */
  state: string;
  /** True when the certificate was renewed in this run. */
  renewed: boolean;
}

export interface AgentOptions extends Pick<CollectOptions, 'hostRoot' | 'edrProcessNames' | 'runCommand'> {
  dir: string;
  clock?: Clock;
  /** Overrides collection (tests); the real collectors run otherwise. */
  collect?: () => Promise<CollectedPosture>;
}

/** The report body: posture fields plus each check's evidence, bounded. */
export function toPostureData(collected: CollectedPosture): PostureData {
  const data: PostureData = {
    ...(collected.osFamily ? { osFamily: collected.osFamily } : {}),
    ...(collected.osVersion ? { osVersion: collected.osVersion } : {}),
    ...(collected.osName ? { osName: collected.osName.slice(0, 128) } : {}),
    hostname: collected.hostname.slice(0, 255),
    ...(collected.serial ? { serial: collected.serial.slice(0, 128) } : {}),
    ...(collected.diskEncrypted !== undefined ? { diskEncrypted: collected.diskEncrypted } : {}),
    ...(collected.firewall !== undefined ? { firewall: collected.firewall } : {}),
    ...(collected.screenLock !== undefined ? { screenLock: collected.screenLock } : {}),
    ...(collected.edrRunning !== undefined ? { edrRunning: collected.edrRunning } : {}),
    checks: collected.checks.slice(0, 32).map((check) => ({
      field: check.field,
      ...(check.value !== undefined
        ? { value: typeof check.value === 'string' ? check.value.slice(0, 128) : check.value }
        : {}),
      evidence: check.evidence.slice(0, MAX_EVIDENCE),
    })),
  };
  return data;
}

/**
 * One round of `vigil agent`: renew the device certificate once past its half-life,
 * collect the posture, sign it with the device key and post it. The server verifies the
 * signature against the device certificate and refuses a replay.
 */
export async function runAgentOnce(options: AgentOptions): Promise<AgentRun> {
  const clock = options.clock ?? systemClock;
  let device = loadDevice(options.dir);
  const dispatcher = deviceDispatcher(device.info.server_ca_file);
  try {
    let renewed = false;
    if (clock.now() >= Date.parse(device.info.renew_after)) {
      device = await renew(device, dispatcher, clock);
      renewed = true;
    }
    const collected = await (options.collect?.() ??
      collectPosture({
        ...(options.hostRoot !== undefined ? { hostRoot: options.hostRoot } : {}),
        ...(options.edrProcessNames !== undefined ? { edrProcessNames: options.edrProcessNames } : {}),
        ...(options.runCommand !== undefined ? { runCommand: options.runCommand } : {}),
      }));
    const posture = toPostureData(collected);
    const jws = await signDeviceRequest(
      device.key,
      device.info.device_id,
      POSTURE_REPORT_TYPE,
      { posture },
      clock.now(),
    );
    const answer = await postToServer(device.info.server, DEVICE_PATHS.posture, jws, {
      contentType: 'application/jose',
      dispatcher,
    });
    if (answer.status !== 202) throw refusedBy(device.info.server, answer.status, answer.body);
    const state = String(answer.body.state);
    saveState(device, state);
    return { posture, state, renewed };
  } finally {
    await dispatcher?.close();
  }
}

async function renew(
  device: EnrolledDevice,
  dispatcher: Dispatcher | undefined,
  clock: Clock,
): Promise<EnrolledDevice> {
  const keyPem = device.key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const { csrPem } = await createCertificateRequest({ commonName: device.info.device_id, keyPem });
  const jws = await signDeviceRequest(
    device.key,
    device.info.device_id,
    RENEWAL_REQUEST_TYPE,
    { csr: csrPem },
    clock.now(),
  );
  const answer = await postToServer(device.info.server, DEVICE_PATHS.renew, jws, {
    contentType: 'application/jose',
    dispatcher,
  });
  if (answer.status !== 200) throw refusedBy(device.info.server, answer.status, answer.body);
  saveIssued(device.dir, device.info.server, parseIssued(answer.body), device.info.server_ca_file);
  return loadDevice(device.dir);
}

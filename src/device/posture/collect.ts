import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { VigilError } from '../../errors.ts';
import { type CommandRunner, oneLine, runCommand } from './command.ts';
import { linuxProbes } from './linux.ts';
import { macosProbes } from './macos.ts';

export type { CommandRunner } from './command.ts';

export type PostureField =
  | 'osFamily'
  | 'osVersion'
  | 'diskEncrypted'
  | 'firewall'
  | 'screenLock'
  | 'edrRunning';

/** The fields every report carries a check for, in the order they are reported. */
export const POSTURE_FIELDS: readonly PostureField[] = [
  'osFamily',
  'osVersion',
  'diskEncrypted',
  'firewall',
  'screenLock',
  'edrRunning',
];

export interface PostureCheck {
  field: PostureField;
  /** undefined when the check could not tell (not root, tool missing): "unknown", never a guess. */
  value: string | boolean | undefined;
  /** What was looked at and what it showed, one line for people ("/sys/block/dm-0/dm/uuid: CRYPT-LUKS2-…"). */
  evidence: string;
}

export interface CollectedPosture {
  /** Policy compares `os_family: [macos, linux]`. */
  osFamily?: 'linux' | 'macos';
  /** Dotted numeric: the Linux kernel version ("6.1.0"), the macOS ProductVersion ("14.4.1"). */
  osVersion?: string;
  /** PRETTY_NAME of os-release, or "macOS 14.4.1". */
  osName?: string;
  hostname: string;
  /** The DMI product serial (Linux, when readable) or IOPlatformSerialNumber (macOS). */
  serial?: string;
  diskEncrypted?: boolean;
  firewall?: boolean;
  screenLock?: boolean;
  edrRunning?: boolean;
  /** One check per {@link PostureField}, unknown ones included, in {@link POSTURE_FIELDS} order. */
  checks: PostureCheck[];
}

export interface CollectOptions {
  /**
   * Read host files under this root (like node_exporter's --path.rootfs: the agent in a
   * container with the host at /host). Commands run only when it is '/'. Default '/'.
   * Linux only.
   */
  hostRoot?: string;
  /** Default process.platform; 'linux' and 'darwin' are supported. */
  platform?: NodeJS.Platform;
  /** Process names of the EDR agent, e.g. ['falcon-sensor', 'osqueryd']; edrRunning is unknown when empty. */
  edrProcessNames?: readonly string[];
  /** Injectable for tests; the default runs execFile without a shell, 5 s timeout, bounded output. */
  runCommand?: CommandRunner;
}

/** How long one check may take in all (its commands and file reads) before it is unknown. */
export const CHECK_TIMEOUT_MS = 10_000;

/** What one check found; value undefined means it could not tell. */
export interface Finding<T> {
  value: T | undefined;
  evidence: string;
}

/** The facts that are not checks: names, serial, and the evidence for the OS family. */
export interface HostFacts {
  osName?: string | undefined;
  hostname: string;
  serial?: string | undefined;
  osFamilyEvidence: string;
}

/** What a platform module offers: one probe per check, each free to take its time. */
export interface PlatformProbes {
  osFamily: 'linux' | 'macos';
  facts(): Promise<HostFacts>;
  osVersion(): Promise<Finding<string>>;
  diskEncrypted(): Promise<Finding<boolean>>;
  firewall(): Promise<Finding<boolean>>;
  screenLock(): Promise<Finding<boolean>>;
  edrRunning(): Promise<Finding<boolean>>;
}

/**
 * Collects the device's posture: OS, disk encryption, firewall, screen lock and EDR, each
 * with the evidence it rests on. A check that cannot tell (not root, tool missing, no
 * screen) is unknown with the reason in its evidence; nothing is guessed and nothing
 * throws for a missing tool. Only an unsupported platform rejects (ERR_DEVICE_PLATFORM).
 *
 * @example
 * const posture = await collectPosture({ edrProcessNames: ['falcon-sensor'] });
 * // posture.diskEncrypted === true; posture.checks[2].evidence ===
 * //   "/ is ext4 on /dev/mapper/root (253:0, /proc/1/mountinfo): /sys/block/dm-0/dm/uuid: CRYPT-LUKS2-… (dm-crypt LUKS2)"
 */
export async function collectPosture(options: CollectOptions = {}): Promise<CollectedPosture> {
  const hostRoot = options.hostRoot ?? '/';
  if (typeof hostRoot !== 'string' || !isAbsolute(hostRoot)) {
    throw new TypeError('collectPosture: hostRoot must be an absolute path');
  }
  const edrProcessNames = options.edrProcessNames ?? [];
  for (const name of edrProcessNames) {
    if (typeof name !== 'string' || name.trim() === '' || name.includes('/')) {
      throw new TypeError('collectPosture: edrProcessNames must be process names without a slash');
    }
  }
  const platform = options.platform ?? process.platform;
  const run = options.runCommand ?? runCommand;
  let probes: PlatformProbes;
  if (platform === 'linux') {
    probes = linuxProbes({ root: hostRoot, run: hostRoot === '/' ? run : undefined, edrProcessNames });
  } else if (platform === 'darwin') {
    if (hostRoot !== '/') throw new TypeError('collectPosture: hostRoot is only supported on Linux');
    probes = macosProbes({ run, edrProcessNames });
  } else {
    throw new VigilError(
      'ERR_DEVICE_PLATFORM',
      `the device agent collects posture on Linux and macOS, not on ${platform}`,
    );
  }
  const unknown = <T>(evidence: string): Finding<T> => ({ value: undefined, evidence });
  const [facts, osVersion, diskEncrypted, firewall, screenLock, edrRunning] = await Promise.all([
    settle(probes.facts, (why): HostFacts => ({ hostname: hostname(), osFamilyEvidence: why })),
    settle(probes.osVersion, unknown<string>),
    settle(probes.diskEncrypted, unknown<boolean>),
    settle(probes.firewall, unknown<boolean>),
    settle(probes.screenLock, unknown<boolean>),
    settle(probes.edrRunning, unknown<boolean>),
  ]);
  const posture: CollectedPosture = {
    osFamily: probes.osFamily,
    osVersion: osVersion.value,
    osName: facts.osName,
    hostname: facts.hostname,
    serial: facts.serial,
    diskEncrypted: diskEncrypted.value,
    firewall: firewall.value,
    screenLock: screenLock.value,
    edrRunning: edrRunning.value,
    checks: [
      { field: 'osFamily', value: probes.osFamily, evidence: facts.osFamilyEvidence },
      { field: 'osVersion', ...osVersion },
      { field: 'diskEncrypted', ...diskEncrypted },
      { field: 'firewall', ...firewall },
      { field: 'screenLock', ...screenLock },
      { field: 'edrRunning', ...edrRunning },
    ],
  };
  // A field the device could not tell is absent, not present-but-undefined.
  for (const [key, value] of Object.entries(posture)) {
    if (value === undefined) delete posture[key as 'osVersion'];
  }
  return posture;
}

/**
 * Runs one probe under {@link CHECK_TIMEOUT_MS}; a probe that takes longer or fails
 * unexpectedly gives `fallback(reason)`, so one stuck read (a hung network mount under
 * hostRoot) or one bug does not hold back or sink the whole report.
 */
async function settle<T>(probe: () => Promise<T>, fallback: (why: string) => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(
      () => resolve(fallback(`check timed out after ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    );
    timer.unref();
  });
  try {
    return await Promise.race([
      probe().catch((error: unknown) =>
        fallback(`check failed: ${oneLine(error instanceof Error ? error.message : String(error))}`),
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

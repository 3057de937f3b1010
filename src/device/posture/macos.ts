import { hostname } from 'node:os';
import type { Finding, HostFacts, PlatformProbes } from './collect.ts';
import {
  attempt,
  type CommandRunner,
  commandLine,
  currentUser,
  describeFailure,
  oneLine,
} from './command.ts';

export interface MacosContext {
  run: CommandRunner;
  edrProcessNames: readonly string[];
}

// Absolute paths: the agent runs as root, and a PATH entry must not decide what runs.
const SW_VERS = '/usr/bin/sw_vers';
const IOREG = '/usr/sbin/ioreg';
const FDESETUP = '/usr/bin/fdesetup';
const SOCKETFILTERFW = '/usr/libexec/ApplicationFirewall/socketfilterfw';
const SYSADMINCTL = '/usr/sbin/sysadminctl';
const PS = '/bin/ps';

/** Most lines of `ps` output looked at when looking for the EDR agent. */
const PROCESS_LIMIT = 65_536;

/** The macOS probes: every answer comes from a command Apple ships, run without a shell. */
export function macosProbes(context: MacosContext): PlatformProbes {
  const { run } = context;
  // facts and osVersion both need sw_vers; ask once.
  let productVersion: Promise<Finding<string>> | undefined;
  const version = () => {
    productVersion ??= swVers(run);
    return productVersion;
  };
  return {
    osFamily: 'macos',
    facts: () => macosFacts(run, version),
    osVersion: version,
    diskEncrypted: () => fileVault(run),
    firewall: () => applicationFirewall(run),
    screenLock: () => screenLock(run),
    edrRunning: () => edrProcess(run, context.edrProcessNames),
  };
}

type Answer<T> = { value: T; evidence: string } | { value: undefined; evidence: string };

/**
 * Runs one command and hands its stdout to `read` when it exited 0; every other outcome
 * (not installed, non-zero exit, timeout) is unknown with the reason.
 */
async function ask<T>(
  run: CommandRunner,
  file: string,
  args: readonly string[],
  read: (output: string) => Answer<T>,
): Promise<Finding<T>> {
  const label = commandLine(file, args);
  const outcome = await attempt(run, file, args);
  if (outcome.kind === 'missing') return { value: undefined, evidence: `${label}: not installed` };
  if (outcome.kind === 'failed') return { value: undefined, evidence: `${label}: ${outcome.detail}` };
  if (outcome.code !== 0) return { value: undefined, evidence: `${label}: ${describeFailure(outcome)}` };
  const answer = read(outcome.stdout);
  return { value: answer.value, evidence: `${label}: ${answer.evidence}` };
}

function swVers(run: CommandRunner): Promise<Finding<string>> {
  return ask(run, SW_VERS, ['-productVersion'], (output) => {
    const text = output.trim();
    return /^\d+(?:\.\d+){0,3}$/.test(text)
      ? { value: text, evidence: text }
      : { value: undefined, evidence: `unexpected "${oneLine(text, 40)}"` };
  });
}

async function macosFacts(run: CommandRunner, version: () => Promise<Finding<string>>): Promise<HostFacts> {
  const [product, serial] = await Promise.all([
    version(),
    ask(run, IOREG, ['-c', 'IOPlatformExpertDevice', '-d', '2'], (output) => {
      const found = /"IOPlatformSerialNumber"\s*=\s*"([^"\n]{1,64})"/.exec(output)?.[1];
      return found === undefined
        ? { value: undefined, evidence: 'no serial' }
        : { value: found, evidence: found };
    }),
  ]);
  const facts: HostFacts = { hostname: hostname(), osFamilyEvidence: `Darwin kernel; ${product.evidence}` };
  if (product.value !== undefined) facts.osName = `macOS ${product.value}`;
  if (serial.value !== undefined) facts.serial = oneLine(serial.value, 64);
  return facts;
}

/**
 * FileVault, from `fdesetup status`: "FileVault is On." is true, "FileVault is Off." (also
 * "…Off, but will be enabled after the next restart.") is false, and so is a disk that is
 * being decrypted.
 */
function fileVault(run: CommandRunner): Promise<Finding<boolean>> {
  return ask(run, FDESETUP, ['status'], (output) => {
    const said = oneLine(output);
    if (/^FileVault is On\b/m.test(output)) {
      return /Decryption in progress/i.test(output)
        ? { value: false, evidence: said }
        : { value: true, evidence: said };
    }
    if (/^FileVault is Off\b/m.test(output)) return { value: false, evidence: said };
    return { value: undefined, evidence: `unexpected "${said}"` };
  });
}

/** The application firewall's global state: 1 (on) and 2 (block all incoming) are on, 0 off. */
function applicationFirewall(run: CommandRunner): Promise<Finding<boolean>> {
  return ask(run, SOCKETFILTERFW, ['--getglobalstate'], (output) => {
    const said = oneLine(output);
    const state = /State = (\d)/.exec(output)?.[1];
    if (state !== undefined) return { value: state !== '0', evidence: said };
    if (/\bis enabled\b/.test(output)) return { value: true, evidence: said };
    if (/\bis disabled\b/.test(output)) return { value: false, evidence: said };
    return { value: undefined, evidence: `unexpected "${said}"` };
  });
}

/**
 * `sysadminctl -screenLock status` (macOS 10.13+) reports on stderr, for the user it runs
 * as: "screenLock delay is 300 seconds" or "…is immediate" is on, "screenLock is off" off.
 */
async function screenLock(run: CommandRunner): Promise<Finding<boolean>> {
  const args = ['-screenLock', 'status'];
  const label = commandLine(SYSADMINCTL, args);
  const outcome = await attempt(run, SYSADMINCTL, args);
  if (outcome.kind === 'missing') return { value: undefined, evidence: `${label}: not installed` };
  if (outcome.kind === 'failed') return { value: undefined, evidence: `${label}: ${outcome.detail}` };
  const output = `${outcome.stdout}\n${outcome.stderr}`;
  const who = `as ${currentUser()}`;
  const delay = /screenLock delay is ([^\n]+)/i.exec(output)?.[1];
  if (delay !== undefined) {
    return { value: true, evidence: `${label} (${who}): delay is ${oneLine(delay, 40)}` };
  }
  if (/screenLock is off/i.test(output)) return { value: false, evidence: `${label} (${who}): off` };
  return { value: undefined, evidence: `${label}: ${describeFailure(outcome)}` };
}

/** Whether a process whose executable is named like one of `names` runs, by `ps -axo comm`. */
async function edrProcess(run: CommandRunner, names: readonly string[]): Promise<Finding<boolean>> {
  if (names.length === 0) return { value: undefined, evidence: 'no EDR process names configured' };
  return ask(run, PS, ['-axo', 'comm'], (output) => {
    // ps prints a COMM header, then the executable's path (or bare name) per process.
    const lines = output.split('\n').slice(1, PROCESS_LIMIT + 1);
    const running = new Set<string>();
    for (const line of lines) {
      const path = line.trim();
      const base = path.slice(path.lastIndexOf('/') + 1);
      if (names.includes(base)) running.add(base);
    }
    const among = `${lines.filter((line) => line.trim() !== '').length} processes`;
    return running.size > 0
      ? { value: true, evidence: `${[...running].join(', ')} running, among ${among}` }
      : { value: false, evidence: `none of ${names.join(', ')} among ${among}` };
  });
}

import { type FileHandle, open, opendir, stat } from 'node:fs/promises';
import { hostname as osHostname, release } from 'node:os';
import { join } from 'node:path';
import type { Finding, HostFacts, PlatformProbes } from './collect.ts';
import {
  attempt,
  type CommandOutcome,
  type CommandRunner,
  commandLine,
  currentUser,
  describeFailure,
  oneLine,
} from './command.ts';

export interface LinuxContext {
  /** Where the host's files are: '/' or, in a container, the host's root mounted e.g. at /host. */
  root: string;
  /** Undefined when commands must not run (reading a host under another root). */
  run: CommandRunner | undefined;
  edrProcessNames: readonly string[];
}

/** Most bytes read from os-release, a sysfs attribute or a proc file. */
const SMALL_FILE_LIMIT = 64 * 1024;
/** Most bytes read from mountinfo (hosts with thousands of container mounts stay well under). */
const MOUNTINFO_LIMIT = 4 * 1024 * 1024;
/** Most entries looked at in /sys/block, in one disk's folder or in one slaves folder. */
const DIRECTORY_ENTRY_LIMIT = 4096;
/** Most layers followed from the root filesystem down to the disks (dm on md on dm on partition ...). */
const DEVICE_DEPTH_LIMIT = 8;
/** Most processes read when looking for the EDR agent or a GNOME session. */
const PROCESS_LIMIT = 65_536;
/** Reads of /proc/<pid>/comm (and cmdline) in flight at once. */
const PROCESS_READ_BATCH = 64;
/** The kernel keeps 15 characters of a process name in comm (TASK_COMM_LEN 16). */
const COMM_LENGTH = 15;
/** Most pids remembered per process name. */
const PIDS_PER_NAME = 8;
/** Most GNOME sessions whose screen lock is read. */
const SESSION_LIMIT = 4;
/** Uids below this are system accounts (login.defs UID_MIN): gdm's greeter, not a person. */
const FIRST_USER_UID = 1000;
/** Most bytes of /etc/passwd read to name a session's user. */
const PASSWD_LIMIT = 1024 * 1024;

/**
 * The Linux probes. Files are read under `context.root`; commands (nft, ufw, gsettings)
 * run only when the root is '/', since a command would see the container, not the host.
 */
export function linuxProbes(context: LinuxContext): PlatformProbes {
  const { root, run } = context;
  const skipped = `commands are not run when the host is read under ${root}`;
  return {
    osFamily: 'linux',
    facts: () => linuxFacts(root),
    osVersion: () => kernelVersion(root),
    diskEncrypted: () => rootDiskEncryption(root),
    firewall: async () => (run === undefined ? { value: undefined, evidence: skipped } : linuxFirewall(run)),
    screenLock: async () =>
      run === undefined ? { value: undefined, evidence: skipped } : gnomeScreenLock(root, run),
    edrRunning: () => edrProcess(root, context.edrProcessNames),
  };
}

// ---------------------------------------------------------------------------------------
// Files

type Read = { text: string } | { error: string };

/**
 * Reads at most `limit` bytes of a file. proc and sysfs files report size 0, so this
 * reads until end of file or the limit rather than trusting stat. Never throws: the
 * error code (ENOENT, EACCES, ...) comes back instead.
 */
async function readBounded(path: string, limit = SMALL_FILE_LIMIT): Promise<Read> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    const buffer = Buffer.alloc(limit);
    let length = 0;
    while (length < limit) {
      const { bytesRead } = await handle.read(buffer, length, limit - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return { text: buffer.toString('utf8', 0, length) };
  } catch (error) {
    return { error: errorCode(error) };
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function listBounded(path: string): Promise<{ names: string[] } | { error: string }> {
  try {
    const names: string[] = [];
    const directory = await opendir(path);
    for await (const entry of directory) {
      names.push(entry.name);
      if (names.length >= DIRECTORY_ENTRY_LIMIT) break;
    }
    return { names: names.sort() };
  } catch (error) {
    return { error: errorCode(error) };
  }
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : oneLine(String(error));
}

// ---------------------------------------------------------------------------------------
// OS, hostname, serial

/**
 * Parses os-release(5): KEY=value lines, values optionally in single or double quotes,
 * backslash escapes outside single quotes, `#` comment lines. Lines that do not parse
 * (unterminated quote, no `=`) are skipped, as systemd does.
 */
export function parseOsRelease(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match === null) continue;
    const value = unquote(match[2] as string);
    if (value !== undefined) fields.set(match[1] as string, value);
  }
  return fields;
}

function unquote(text: string): string | undefined {
  let value = '';
  let quote: '"' | "'" | undefined;
  for (let index = 0; index < text.length; index++) {
    const char = text[index] as string;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else value += char;
    } else if (char === '\\') {
      index++;
      if (index >= text.length) return undefined;
      value += text[index];
    } else if (quote === '"') {
      if (char === '"') quote = undefined;
      else value += char;
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (/\s/.test(char)) {
      // Unquoted white space ends the value; anything after it is not part of it.
      break;
    } else {
      value += char;
    }
  }
  return quote === undefined ? value : undefined;
}

async function readOsRelease(
  root: string,
): Promise<{ path: string; fields: Map<string, string> } | { why: string }> {
  const tried: string[] = [];
  // os-release(5): /etc/os-release wins, /usr/lib/os-release is the fallback.
  for (const path of [join(root, 'etc/os-release'), join(root, 'usr/lib/os-release')]) {
    const read = await readBounded(path);
    if ('text' in read) return { path, fields: parseOsRelease(read.text) };
    tried.push(`${path}: ${read.error}`);
  }
  return { why: tried.join(', ') };
}

/** DMI serials that vendors leave as placeholders; reporting them would make devices look alike. */
const PLACEHOLDER_SERIALS = new Set([
  '',
  '0',
  'none',
  'default string',
  'to be filled by o.e.m.',
  'system serial number',
  'not specified',
  'not applicable',
  '0123456789',
]);

async function linuxFacts(root: string): Promise<HostFacts> {
  const [osRelease, serialRead, hostname] = await Promise.all([
    readOsRelease(root),
    // Readable by root only (mode 0400); unreadable means no serial, not an error.
    readBounded(join(root, 'sys/class/dmi/id/product_serial'), 256),
    hostnameOf(root),
  ]);
  const facts: HostFacts = { hostname, osFamilyEvidence: '' };
  const serial = 'text' in serialRead ? oneLine(serialRead.text, 128) : '';
  if (!PLACEHOLDER_SERIALS.has(serial.toLowerCase())) facts.serial = serial;
  if ('why' in osRelease) {
    facts.osFamilyEvidence = `Linux kernel; no os-release (${osRelease.why})`;
    return facts;
  }
  const { path, fields } = osRelease;
  const name = fields.get('PRETTY_NAME') ?? joinDefined(fields.get('NAME'), fields.get('VERSION'));
  if (name !== undefined && name !== '') facts.osName = oneLine(name, 128);
  const id = fields.get('ID');
  facts.osFamilyEvidence =
    `Linux kernel; ${path}: ` +
    [
      id === undefined ? undefined : `ID=${oneLine(id, 40)}`,
      facts.osName === undefined ? undefined : `"${facts.osName}"`,
    ]
      .filter((part) => part !== undefined)
      .join(' ');
  return facts;
}

function joinDefined(...parts: (string | undefined)[]): string | undefined {
  const present = parts.filter((part): part is string => part !== undefined && part !== '');
  return present.length === 0 ? undefined : present.join(' ');
}

async function hostnameOf(root: string): Promise<string> {
  if (root === '/') return osHostname();
  // The agent's own hostname is the container's; the host names itself in /etc/hostname.
  const read = await readBounded(join(root, 'etc/hostname'), 256);
  const name = 'text' in read ? oneLine(read.text.split('\n')[0] ?? '', 253) : '';
  return name === '' ? osHostname() : name;
}

/** "6.1.0" out of "6.1.0-18-amd64": the dotted numeric part policy compares. */
function kernelVersionOf(release: string): string | undefined {
  return /^\d+\.\d+(?:\.\d+)?/.exec(release.trim())?.[0];
}

async function kernelVersion(root: string): Promise<Finding<string>> {
  const path = join(root, 'proc/sys/kernel/osrelease');
  const read = await readBounded(path, 256);
  let source: string;
  let text: string;
  if ('text' in read) {
    source = path;
    text = read.text.trim();
  } else if (root === '/') {
    source = 'uname release';
    text = release();
  } else {
    return { value: undefined, evidence: `${path}: ${read.error}` };
  }
  const version = kernelVersionOf(text);
  return version === undefined
    ? { value: undefined, evidence: `${source}: "${oneLine(text, 64)}" has no dotted version` }
    : { value: version, evidence: `${source}: ${oneLine(text, 64)}` };
}

// ---------------------------------------------------------------------------------------
// Disk encryption

interface RootMount {
  /** The file it came from, for evidence. */
  path: string;
  majorMinor: string;
  fsType: string;
  source: string;
}

/**
 * The mount at `/` in the host's mount table. pid 1's mountinfo is the host's view even
 * when the agent runs in a container with the host's /proc under hostRoot; our own is the
 * fallback (hidepid hides pid 1 from non-root users). Mounts stack, so the last entry
 * for `/` is the one in effect.
 */
async function findRootMount(root: string): Promise<RootMount | { why: string }> {
  const problems: string[] = [];
  for (const path of [join(root, 'proc/1/mountinfo'), join(root, 'proc/self/mountinfo')]) {
    const read = await readBounded(path, MOUNTINFO_LIMIT);
    if ('error' in read) {
      problems.push(`${path}: ${read.error}`);
      continue;
    }
    let found: RootMount | undefined;
    for (const line of read.text.split('\n')) {
      // id parent major:minor root mount-point options [optional...] - fstype source super-options
      const fields = line.split(' ');
      const separator = fields.indexOf('-', 6);
      if (separator === -1 || fields[4] !== '/') continue;
      found = {
        path,
        majorMinor: fields[2] as string,
        fsType: fields[separator + 1] ?? '',
        source: unescapeMount(fields[separator + 2] ?? ''),
      };
    }
    if (found !== undefined) return found;
    problems.push(`${path}: no mount at /`);
  }
  return { why: problems.join(', ') };
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040). */
function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/**
 * libcryptsetup names a mapping's dm uuid "CRYPT-<TYPE>-…". These types encrypt; VERITY,
 * INTEGRITY, SUBDEV (the integrity layer under an authenticated LUKS2 device) and TEMP
 * also start with CRYPT- but do not, so a dm-verity root does not count as encrypted.
 */
const ENCRYPTING_TYPES = new Set(['LUKS1', 'LUKS2', 'PLAIN', 'LOOPAES', 'TCRYPT', 'BITLK', 'FVAULT2']);

interface BlockDevice {
  name: string;
  /** Its sysfs folder under the root. */
  dir: string;
  /** The disk a partition belongs to. */
  disk?: BlockDevice;
}

/** The block devices of /sys/block and their partitions, looked up lazily and once. */
class BlockDevices {
  readonly #root: string;
  #devices: Promise<BlockDevice[] | { why: string }> | undefined;

  constructor(root: string) {
    this.#root = root;
  }

  all(): Promise<BlockDevice[] | { why: string }> {
    this.#devices ??= this.#list();
    return this.#devices;
  }

  async #list(): Promise<BlockDevice[] | { why: string }> {
    const base = join(this.#root, 'sys/block');
    const listed = await listBounded(base);
    if ('error' in listed) return { why: `${base}: ${listed.error}` };
    const devices: BlockDevice[] = [];
    for (const name of listed.names) {
      const disk: BlockDevice = { name, dir: join(base, name) };
      devices.push(disk);
      const inside = await listBounded(disk.dir);
      if ('error' in inside) continue;
      // Partitions are sub-folders named after their disk: sda1, nvme0n1p2, mmcblk0p1.
      for (const entry of inside.names) {
        if (entry.startsWith(name) && entry !== name) {
          devices.push({ name: entry, dir: join(disk.dir, entry), disk });
        }
      }
    }
    return devices;
  }

  async byNumber(majorMinor: string): Promise<BlockDevice | undefined> {
    const devices = await this.all();
    if (!Array.isArray(devices)) return undefined;
    for (const device of devices) {
      const read = await readBounded(join(device.dir, 'dev'), 64);
      if ('text' in read && read.text.trim() === majorMinor) return device;
    }
    return undefined;
  }

  async byName(name: string): Promise<BlockDevice | undefined> {
    const devices = await this.all();
    return Array.isArray(devices) ? devices.find((device) => device.name === name) : undefined;
  }

  /** The dm device whose dm/name is `mapperName` (/dev/mapper/<mapperName>). */
  async byMapperName(mapperName: string): Promise<BlockDevice | undefined> {
    const devices = await this.all();
    if (!Array.isArray(devices)) return undefined;
    for (const device of devices) {
      if (!device.name.startsWith('dm-')) continue;
      const read = await readBounded(join(device.dir, 'dm/name'), 256);
      if ('text' in read && read.text.trim() === mapperName) return device;
    }
    return undefined;
  }
}

/**
 * Whether the root filesystem is on dm-crypt. The device under `/` (by major:minor from
 * mountinfo, or by its source /dev/mapper/NAME or /dev/NAME when the number is virtual, as
 * on btrfs) is followed down through /sys/block/<dev>/slaves (LVM, md, multipath) to the
 * disks. True when every path down passes a dm device whose dm/uuid is an encrypting
 * "CRYPT-<TYPE>-" mapping; false when some path reaches a disk without one; unknown when
 * the root is not on a local block device (overlay in a container, NFS, ZFS) or sysfs
 * cannot be read. A dm-crypt device that holds something other than `/` does not count.
 */
async function rootDiskEncryption(root: string): Promise<Finding<boolean>> {
  const mount = await findRootMount(root);
  if ('why' in mount) return { value: undefined, evidence: `cannot find the root mount: ${mount.why}` };
  const where = `/ is ${oneLine(mount.fsType, 32)} on ${oneLine(mount.source, 96)} (${oneLine(mount.majorMinor, 16)}, ${mount.path})`;
  const devices = new BlockDevices(root);
  const listed = await devices.all();
  if (!Array.isArray(listed)) {
    return { value: undefined, evidence: `${where}; cannot list block devices: ${listed.why}` };
  }

  let device: BlockDevice | undefined;
  if (!mount.majorMinor.startsWith('0:')) device = await devices.byNumber(mount.majorMinor);
  if (device === undefined && mount.source.startsWith('/dev/mapper/')) {
    device = await devices.byMapperName(mount.source.slice('/dev/mapper/'.length));
  } else if (device === undefined && /^\/dev\/[^/]+$/.test(mount.source)) {
    device = await devices.byName(mount.source.slice('/dev/'.length));
  }
  if (device === undefined) {
    const why = mount.majorMinor.startsWith('0:')
      ? 'not a local block device (overlay, network or pooled filesystem); run the agent on the host or with hostRoot'
      : 'no block device with that number in sysfs';
    return { value: undefined, evidence: `${where}: ${why}` };
  }
  const verdict = await followDevice(devices, device, 0);
  return { value: verdict.value, evidence: `${where}: ${verdict.evidence}` };
}

async function followDevice(
  devices: BlockDevices,
  device: BlockDevice,
  depth: number,
): Promise<Finding<boolean>> {
  if (depth >= DEVICE_DEPTH_LIMIT) {
    return { value: undefined, evidence: `${device.name}: more than ${DEVICE_DEPTH_LIMIT} layers` };
  }
  if (device.disk !== undefined) {
    const below = await followDevice(devices, device.disk, depth + 1);
    return { value: below.value, evidence: `${device.name} (partition) → ${below.evidence}` };
  }
  if (device.name.startsWith('loop')) {
    return { value: undefined, evidence: `${device.name} is a loop device backed by a file, not followed` };
  }
  if (device.name.startsWith('dm-')) {
    const uuidPath = join(device.dir, 'dm/uuid');
    const read = await readBounded(uuidPath, 256);
    if ('error' in read) return { value: undefined, evidence: `${uuidPath}: ${read.error}` };
    const uuid = read.text.trim();
    const type = /^CRYPT-([A-Z0-9]+)-/.exec(uuid)?.[1];
    if (type !== undefined && ENCRYPTING_TYPES.has(type)) {
      return { value: true, evidence: `${uuidPath}: ${oneLine(uuid, 96)} (dm-crypt ${type})` };
    }
  }
  const slavesPath = join(device.dir, 'slaves');
  const slaves = await listBounded(slavesPath);
  if ('error' in slaves) return { value: undefined, evidence: `${slavesPath}: ${slaves.error}` };
  if (slaves.names.length === 0) {
    return { value: false, evidence: `${device.name} is a plain block device, no dm-crypt layer` };
  }
  const below: Finding<boolean>[] = [];
  for (const name of slaves.names) {
    const slave = await devices.byName(name);
    below.push(
      slave === undefined
        ? { value: undefined, evidence: `${name} not found in sysfs` }
        : await followDevice(devices, slave, depth + 1),
    );
  }
  // One plain path is enough to say false; an unknown path otherwise keeps it unknown.
  const deciding =
    below.find((finding) => finding.value === false) ??
    below.find((finding) => finding.value === undefined) ??
    below[0];
  const shown = deciding ?? { value: undefined, evidence: '' };
  const fanOut = below.length > 1 ? ` (1 of ${below.length} devices under it)` : '';
  return { value: shown.value, evidence: `${device.name} → ${shown.evidence}${fanOut}` };
}

// ---------------------------------------------------------------------------------------
// Firewall

/**
 * Whether an nftables ruleset filters incoming traffic: some table has a base chain on
 * the input hook whose policy is drop, or in which (or in a chain it jumps or goes to) a
 * rule drops or rejects. Chains on other hooks (Docker's forward and nat chains) do not
 * count, nor does an input chain that only accepts. Returns the chain that decided.
 */
export function nftFiltersInput(ruleset: string): { filters: boolean; evidence: string } {
  interface Chain {
    input: boolean;
    policyDrop: boolean;
    drops: boolean;
    targets: string[];
  }
  const tables = new Map<string, Map<string, Chain>>();
  let table: Map<string, Chain> | undefined;
  let tableName = '';
  let chain: Chain | undefined;
  let depth = 0;
  for (const raw of ruleset.split('\n')) {
    // Quoted strings (comments, interface names) must not be read as keywords.
    const line = raw.replace(/"(?:[^"\\]|\\.)*"/g, '""').trim();
    if (depth === 0) {
      const match = /^table\s+(\S+\s+\S+)\s*\{/.exec(line);
      if (match !== null) {
        tableName = match[1] as string;
        table = new Map();
        tables.set(tableName, table);
      }
    } else if (depth === 1 && table !== undefined) {
      const match = /^chain\s+(\S+)\s*\{/.exec(line);
      if (match !== null) {
        chain = { input: false, policyDrop: false, drops: false, targets: [] };
        table.set(match[1] as string, chain);
      }
    } else if (depth === 2 && chain !== undefined) {
      if (/\bhook\s+input\b/.test(line)) chain.input = true;
      if (/\bpolicy\s+drop\b/.test(line)) chain.policyDrop = true;
      else if (/\b(?:drop|reject)\b/.test(line)) chain.drops = true;
      for (const jump of line.matchAll(/\b(?:jump|goto)\s+([^\s;,}]+)/g)) {
        chain.targets.push(jump[1] as string);
      }
    }
    for (const char of line) {
      if (char === '{') depth++;
      else if (char === '}') depth--;
    }
    if (depth < 0) depth = 0;
    if (depth <= 1) chain = undefined;
    if (depth === 0) table = undefined;
  }
  for (const [name, chains] of tables) {
    for (const [chainName, base] of chains) {
      if (!base.input) continue;
      const where = `table ${name} chain ${chainName} (hook input)`;
      if (base.policyDrop) return { filters: true, evidence: `${where} has policy drop` };
      // Breadth-first through jump/goto targets; chains are finite and each is seen once.
      const seen = new Set([chainName]);
      const queue = [chainName];
      while (queue.length > 0) {
        const current = chains.get(queue.shift() as string);
        if (current === undefined) continue;
        if (current.drops) return { filters: true, evidence: `${where} drops or rejects traffic` };
        for (const target of current.targets) {
          if (!seen.has(target)) {
            seen.add(target);
            queue.push(target);
          }
        }
      }
    }
  }
  const count = [...tables.values()].reduce((sum, chains) => sum + chains.size, 0);
  return {
    filters: false,
    evidence:
      count === 0
        ? 'empty ruleset'
        : `${tables.size} table(s), ${count} chain(s), none on the input hook drops or rejects`,
  };
}

type ToolVerdict = { state: 'on' | 'off' | 'failed' | 'missing'; evidence: string };

/**
 * The firewall is on when nftables filters input (see {@link nftFiltersInput}) or `ufw
 * status` says active (ufw with the iptables-legacy backend does not show in nft). Off
 * when the tools that are installed ran and neither says so; unknown when a tool could not
 * be read (not root) or neither is installed.
 */
async function linuxFirewall(run: CommandRunner): Promise<Finding<boolean>> {
  const [nft, ufw] = await Promise.all([
    attempt(run, 'nft', ['list', 'ruleset']).then((outcome) =>
      toolVerdict('nft list ruleset', outcome, (stdout) => {
        const parsed = nftFiltersInput(stdout);
        return { state: parsed.filters ? 'on' : 'off', evidence: parsed.evidence };
      }),
    ),
    attempt(run, 'ufw', ['status']).then((outcome) =>
      toolVerdict('ufw status', outcome, (stdout) => {
        const status = /^Status:\s*(\S+)/m.exec(stdout)?.[1];
        if (status === 'active') return { state: 'on', evidence: 'Status: active' };
        if (status === 'inactive') return { state: 'off', evidence: 'Status: inactive' };
        return { state: 'failed', evidence: `unexpected output "${oneLine(stdout, 60)}"` };
      }),
    ),
  ]);
  const verdicts = [nft, ufw];
  const evidence = verdicts.map((verdict) => verdict.evidence).join('; ');
  if (verdicts.some((verdict) => verdict.state === 'on')) {
    return {
      value: true,
      evidence: verdicts.find((verdict) => verdict.state === 'on')?.evidence ?? evidence,
    };
  }
  if (verdicts.some((verdict) => verdict.state === 'failed')) return { value: undefined, evidence };
  if (verdicts.some((verdict) => verdict.state === 'off')) return { value: false, evidence };
  return { value: undefined, evidence: 'neither nft nor ufw is installed' };
}

function toolVerdict(
  label: string,
  outcome: CommandOutcome,
  parse: (stdout: string) => ToolVerdict,
): ToolVerdict {
  if (outcome.kind === 'missing') return { state: 'missing', evidence: `${label}: not installed` };
  if (outcome.kind === 'failed') return { state: 'failed', evidence: `${label}: ${outcome.detail}` };
  if (outcome.code !== 0) return { state: 'failed', evidence: `${label}: ${describeFailure(outcome)}` };
  const verdict = parse(outcome.stdout);
  return { state: verdict.state, evidence: `${label}: ${verdict.evidence}` };
}

// ---------------------------------------------------------------------------------------
// Processes

/**
 * The pids of processes named like one of `names`, by /proc/<pid>/comm (the kernel keeps
 * its first 15 characters, so longer names are compared by those) or by the file name of
 * argv[0] (Node and others rename their main thread, which changes comm). At most
 * {@link PROCESS_LIMIT} processes are read.
 */
async function findProcesses(
  procPath: string,
  names: readonly string[],
): Promise<{ found: Map<string, string[]>; count: number } | { why: string }> {
  const pids: string[] = [];
  try {
    for await (const entry of await opendir(procPath)) {
      if (/^\d+$/.test(entry.name)) pids.push(entry.name);
      if (pids.length >= PROCESS_LIMIT) break;
    }
  } catch (error) {
    return { why: `${procPath}: ${errorCode(error)}` };
  }
  if (!pids.includes('1')) {
    return { why: `${procPath} does not show pid 1: other users' processes are hidden (hidepid)` };
  }
  const byComm = new Map(names.map((name) => [name.slice(0, COMM_LENGTH), name]));
  const found = new Map<string, string[]>();
  const note = (name: string, pid: string) => {
    const list = found.get(name) ?? [];
    if (list.length < PIDS_PER_NAME) list.push(pid);
    found.set(name, list);
  };
  for (let start = 0; start < pids.length; start += PROCESS_READ_BATCH) {
    const batch = pids.slice(start, start + PROCESS_READ_BATCH);
    await Promise.all(
      batch.map(async (pid) => {
        // A process that ended between the listing and the read is simply not there.
        const comm = await readBounded(join(procPath, pid, 'comm'), 64);
        const byName = 'text' in comm ? byComm.get(comm.text.replace(/\n$/, '')) : undefined;
        if (byName !== undefined) return note(byName, pid);
        const cmdline = await readBounded(join(procPath, pid, 'cmdline'), 4096);
        if (!('text' in cmdline)) return;
        const argv0 = cmdline.text.split('\0')[0] ?? '';
        const base = argv0.slice(argv0.lastIndexOf('/') + 1);
        if (names.includes(base)) note(base, pid);
      }),
    );
  }
  return { found, count: pids.length };
}

// ---------------------------------------------------------------------------------------
// Screen lock

/**
 * GNOME's screen lock, read for each user who has a GNOME session (a gnome-shell process
 * owned by a uid of {@link FIRST_USER_UID} or more: gdm's login screen does not count).
 * On when lock-enabled is true and the screen blanks at all (idle-delay above 0), for
 * every such user. When the agent runs as root it reads another user's settings through
 * `runuser -u USER -- gsettings`; as anyone else it can read only its own. Without a
 * GNOME session (other desktops, servers that have no screen) the answer is unknown.
 */
async function gnomeScreenLock(root: string, run: CommandRunner): Promise<Finding<boolean>> {
  const procPath = join(root, 'proc');
  const scan = await findProcesses(procPath, ['gnome-shell']);
  if ('why' in scan) return { value: undefined, evidence: `cannot look for a GNOME session: ${scan.why}` };
  const owners = new Set<number>();
  for (const pid of scan.found.get('gnome-shell') ?? []) {
    const uid = await ownerOf(join(procPath, pid));
    if (uid !== undefined && uid >= FIRST_USER_UID) owners.add(uid);
  }
  if (owners.size === 0) {
    return {
      value: undefined,
      evidence: `no GNOME session (gnome-shell) among ${scan.count} processes: no screen lock setting to read (other desktops and servers without a screen are unknown)`,
    };
  }
  const self = process.getuid?.();
  const findings: Finding<boolean>[] = [];
  for (const uid of [...owners].slice(0, SESSION_LIMIT)) {
    if (uid === self) {
      findings.push(await readGnomeLock(run, [], currentUser()));
      continue;
    }
    if (self !== 0) {
      findings.push({
        value: undefined,
        evidence: `the GNOME session belongs to uid ${uid}; the agent runs as uid ${self ?? '?'} and cannot read its settings`,
      });
      continue;
    }
    const user = await userName(root, uid);
    findings.push(
      user === undefined
        ? {
            value: undefined,
            evidence: `the GNOME session belongs to uid ${uid}, which ${join(root, 'etc/passwd')} does not name`,
          }
        : await readGnomeLock(run, ['runuser', '-u', user, '--'], user),
    );
  }
  // Any user without a lock makes it false; otherwise one unknown keeps it unknown.
  const deciding =
    findings.find((finding) => finding.value === false) ??
    findings.find((finding) => finding.value === undefined) ??
    findings[0];
  return deciding ?? { value: undefined, evidence: 'no GNOME session' };
}

async function readGnomeLock(
  run: CommandRunner,
  asUser: readonly string[],
  who: string,
): Promise<Finding<boolean>> {
  const lockArgs = ['get', 'org.gnome.desktop.screensaver', 'lock-enabled'];
  const idleArgs = ['get', 'org.gnome.desktop.session', 'idle-delay'];
  const command = (args: string[]) => {
    const all = [...asUser, 'gsettings', ...args];
    return attempt(run, all[0] as string, all.slice(1));
  };
  const [lock, idle] = await Promise.all([command(lockArgs), command(idleArgs)]);
  const label = `${commandLine('gsettings', lockArgs)} (as ${who})`;
  if (lock.kind === 'missing') {
    return { value: undefined, evidence: `${label}: ${asUser[0] ?? 'gsettings'} not installed` };
  }
  if (lock.kind === 'failed') return { value: undefined, evidence: `${label}: ${lock.detail}` };
  if (lock.code !== 0) return { value: undefined, evidence: `${label}: ${describeFailure(lock)}` };
  const enabled = lock.stdout.trim();
  if (enabled === 'false') return { value: false, evidence: `${label}: false` };
  if (enabled !== 'true') {
    return { value: undefined, evidence: `${label}: unexpected "${oneLine(enabled, 40)}"` };
  }
  // "uint32 300": seconds of idleness before the screen blanks and, with lock-enabled, locks.
  const delay =
    idle.kind === 'ran' && idle.code === 0 ? /(\d+)\s*$/.exec(idle.stdout.trim())?.[1] : undefined;
  if (delay === undefined) return { value: true, evidence: `${label}: true; idle-delay unreadable` };
  if (Number(delay) === 0) {
    return { value: false, evidence: `${label}: true, but idle-delay is 0 so the screen never blanks` };
  }
  return { value: true, evidence: `${label}: true, idle-delay ${delay} s` };
}

async function ownerOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).uid;
  } catch {
    return undefined;
  }
}

/** The login name of `uid` from the host's /etc/passwd (users from LDAP are not there). */
async function userName(root: string, uid: number): Promise<string | undefined> {
  const read = await readBounded(join(root, 'etc/passwd'), PASSWD_LIMIT);
  if (!('text' in read)) return undefined;
  for (const line of read.text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name !== undefined && /^[a-z_][a-z0-9_.-]*\$?$/i.test(name) && id === String(uid)) return name;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// EDR

/**
 * Whether a process named like one of `names` runs (see {@link findProcesses}). When pid 1
 * is not visible, /proc hides other users' processes (hidepid) and the answer is unknown.
 * In a container without the host's pid namespace only the container's processes show.
 */
async function edrProcess(root: string, names: readonly string[]): Promise<Finding<boolean>> {
  if (names.length === 0) return { value: undefined, evidence: 'no EDR process names configured' };
  const procPath = join(root, 'proc');
  const scan = await findProcesses(procPath, names);
  if ('why' in scan) return { value: undefined, evidence: scan.why };
  const among = `${scan.count} processes in ${procPath}`;
  if (scan.found.size > 0) {
    const running = [...scan.found].map(([name, pids]) => `${name} (pid ${pids.join(', ')})`).join(', ');
    return { value: true, evidence: `${running} running, among ${among}` };
  }
  return { value: false, evidence: `none of ${names.join(', ')} among ${among}` };
}

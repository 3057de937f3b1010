import assert from 'node:assert/strict';
import { chownSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type CollectedPosture,
  type CommandRunner,
  collectPosture,
  POSTURE_FIELDS,
  type PostureField,
} from '../../src/device/posture/collect.ts';
import { runCommand } from '../../src/device/posture/command.ts';
import { linuxProbes, nftFiltersInput, parseOsRelease } from '../../src/device/posture/linux.ts';
import { isVigilError } from '../../src/errors.ts';
import { blockDevice, LUKS_UUID, makeHostRoot, rootMount } from '../support/host-root.ts';
import { tempDir } from '../support/tmp.ts';

const base = tempDir('vigil-posture-');
const fakeRoot = (tree: Record<string, string | null>) => makeHostRoot(base, tree);

/** /proc entries for processes: pid to comm (and optionally argv). */
function processes(list: Record<string, string | { comm: string; argv: string[] }>): Record<string, string> {
  const tree: Record<string, string> = {};
  for (const [pid, process] of Object.entries(list)) {
    const comm = typeof process === 'string' ? process : process.comm;
    const argv = typeof process === 'string' ? [process] : process.argv;
    tree[`proc/${pid}/comm`] = `${comm}\n`;
    tree[`proc/${pid}/cmdline`] = `${argv.join('\0')}\0`;
  }
  return tree;
}

function check(posture: CollectedPosture, field: PostureField) {
  const found = posture.checks.find((candidate) => candidate.field === field);
  assert.ok(found, `no check for ${field}`);
  return found;
}

/** A runner that answers from a table of "file args" lines; anything else is not installed. */
function fakeRunner(
  answers: Record<string, { code?: number; stdout?: string; stderr?: string } | Error>,
): CommandRunner & { calls: string[] } {
  const calls: string[] = [];
  const runner = async (file: string, args: readonly string[]) => {
    const line = [file, ...args].join(' ');
    calls.push(line);
    const answer = answers[line];
    if (answer === undefined) return undefined;
    if (answer instanceof Error) throw answer;
    return { code: answer.code ?? 0, stdout: answer.stdout ?? '', stderr: answer.stderr ?? '' };
  };
  return Object.assign(runner, { calls });
}

describe('Linux disk encryption', () => {
  it('reports the root filesystem encrypted when it sits on a LUKS2 dm-crypt mapping, naming the dm uuid', async () => {
    const root = fakeRoot({
      ...rootMount('253:0', 'ext4', '/dev/mapper/cryptroot'),
      ...blockDevice('dm-0', '253:0', { uuid: LUKS_UUID, mapperName: 'cryptroot', slaves: ['nvme0n1p3'] }),
      ...blockDevice('nvme0n1', '259:0', { partitions: { nvme0n1p1: '259:1', nvme0n1p3: '259:3' } }),
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, true);
    const evidence = check(posture, 'diskEncrypted').evidence;
    assert.match(evidence, /^\/ is ext4 on \/dev\/mapper\/cryptroot \(253:0, /);
    assert.ok(evidence.includes(`/sys/block/dm-0/dm/uuid: ${LUKS_UUID} (dm-crypt LUKS2)`), evidence);
  });

  it('follows LVM on LUKS down through the slaves to the dm-crypt layer', async () => {
    const root = fakeRoot({
      ...rootMount('253:1', 'xfs', '/dev/mapper/vg-root'),
      ...blockDevice('dm-1', '253:1', { uuid: 'LVM-abcdef', mapperName: 'vg-root', slaves: ['dm-0'] }),
      ...blockDevice('dm-0', '253:0', { uuid: LUKS_UUID, mapperName: 'cryptroot', slaves: ['sda2'] }),
      ...blockDevice('sda', '8:0', { partitions: { sda1: '8:1', sda2: '8:2' } }),
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, true);
    assert.match(check(posture, 'diskEncrypted').evidence, /dm-1 → .*dm-0\/dm\/uuid: CRYPT-LUKS2-/);
  });

  it('finds a btrfs root by its /dev/mapper name when mountinfo gives a virtual device number', async () => {
    const root = fakeRoot({
      ...rootMount('0:33', 'btrfs', '/dev/mapper/luks-root'),
      ...blockDevice('dm-0', '253:0', { uuid: LUKS_UUID, mapperName: 'luks-root', slaves: ['sda2'] }),
      ...blockDevice('sda', '8:0', { partitions: { sda2: '8:2' } }),
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, true);
  });

  it('reports a root on a plain partition as not encrypted, even when another dm-crypt device exists', async () => {
    const root = fakeRoot({
      ...rootMount('8:2', 'ext4', '/dev/sda2'),
      ...blockDevice('sda', '8:0', { partitions: { sda1: '8:1', sda2: '8:2' } }),
      // An encrypted data disk does not make / encrypted.
      ...blockDevice('dm-0', '253:0', { uuid: LUKS_UUID, mapperName: 'data', slaves: ['sdb'] }),
      ...blockDevice('sdb', '8:16'),
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, false);
    assert.match(
      check(posture, 'diskEncrypted').evidence,
      /sda2 \(partition\) → sda is a plain block device, no dm-crypt layer$/,
    );
  });

  it('does not count a dm-verity root (CRYPT-VERITY uuid) as encrypted', async () => {
    const root = fakeRoot({
      ...rootMount('253:0', 'erofs', '/dev/mapper/root'),
      ...blockDevice('dm-0', '253:0', { uuid: 'CRYPT-VERITY-0123abcd-root', slaves: ['vda'] }),
      ...blockDevice('vda', '254:0'),
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, false);
  });

  it('reports a striped root as not encrypted when one of its disks has no dm-crypt layer', async () => {
    const root = fakeRoot({
      ...rootMount('9:0', 'ext4', '/dev/md0'),
      ...blockDevice('md0', '9:0', { slaves: ['dm-0', 'sdb'] }),
      ...blockDevice('dm-0', '253:0', { uuid: LUKS_UUID, slaves: ['sda'] }),
      ...blockDevice('sda', '8:0'),
      ...blockDevice('sdb', '8:16'),
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, false);
    assert.match(
      check(posture, 'diskEncrypted').evidence,
      /md0 → sdb is a plain block device.*\(1 of 2 devices/,
    );
  });

  it('is unknown, never false, when /sys is missing', async () => {
    const root = fakeRoot(rootMount('253:0', 'ext4', '/dev/mapper/cryptroot'));
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, undefined);
    assert.ok(!('diskEncrypted' in posture));
    assert.match(check(posture, 'diskEncrypted').evidence, /cannot list block devices: .*sys\/block: ENOENT/);
  });

  it('is unknown when the mount table cannot be read', async () => {
    const root = fakeRoot(blockDevice('sda', '8:0'));
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, undefined);
    assert.match(
      check(posture, 'diskEncrypted').evidence,
      /^cannot find the root mount: .*proc\/1\/mountinfo: ENOENT/,
    );
  });

  it('is unknown when / is an overlay (a container without the host root)', async () => {
    const root = fakeRoot({ ...rootMount('0:52', 'overlay', 'overlay'), ...blockDevice('sda', '8:0') });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.diskEncrypted, undefined);
    assert.match(check(posture, 'diskEncrypted').evidence, /overlay on overlay .*not a local block device/);
  });
});

describe('Linux OS facts', () => {
  it('parses os-release values in double and single quotes with escapes, skipping comments and broken lines', () => {
    const fields = parseOsRelease(
      [
        '# written by the image builder',
        'NAME="Fedora Linux"',
        "VERSION='40 (Workstation Edition)'",
        'ID=fedora',
        'PRETTY_NAME="Fedora \\"Rawhide\\" \\$HOME \\\\ 40"',
        '   # indented comment',
        'BROKEN="no closing quote',
        'not a key value line',
        'VERSION_ID=40',
        '',
      ].join('\n'),
    );
    assert.deepEqual(Object.fromEntries(fields), {
      NAME: 'Fedora Linux',
      VERSION: '40 (Workstation Edition)',
      ID: 'fedora',
      PRETTY_NAME: 'Fedora "Rawhide" $HOME \\ 40',
      VERSION_ID: '40',
    });
  });

  it('takes the name from PRETTY_NAME and the version from the kernel release under the root', async () => {
    const root = fakeRoot({
      'etc/os-release': 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\n',
      'proc/sys/kernel/osrelease': '6.8.0-45-generic\n',
      'etc/hostname': 'build-host-7\n',
      'sys/class/dmi/id/product_serial': 'PF2ABCDE\n',
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.osFamily, 'linux');
    assert.equal(posture.osName, 'Ubuntu 24.04.1 LTS');
    assert.equal(posture.osVersion, '6.8.0');
    assert.equal(posture.hostname, 'build-host-7');
    assert.equal(posture.serial, 'PF2ABCDE');
    assert.match(check(posture, 'osFamily').evidence, /etc\/os-release: ID=ubuntu "Ubuntu 24.04.1 LTS"$/);
    assert.match(check(posture, 'osVersion').evidence, /proc\/sys\/kernel\/osrelease: 6.8.0-45-generic$/);
  });

  it('falls back to /usr/lib/os-release and leaves out a placeholder DMI serial', async () => {
    const root = fakeRoot({
      'usr/lib/os-release': 'NAME=Arch\nVERSION=rolling\n',
      'sys/class/dmi/id/product_serial': 'To Be Filled By O.E.M.\n',
    });
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.osName, 'Arch rolling');
    assert.equal(posture.serial, undefined);
  });

  it('leaves the kernel version unknown when a foreign root has no /proc', async () => {
    const posture = await collectPosture({ platform: 'linux', hostRoot: fakeRoot({}) });
    assert.equal(posture.osVersion, undefined);
    assert.match(check(posture, 'osVersion').evidence, /osrelease: ENOENT$/);
  });
});

describe('Linux EDR process', () => {
  const root = fakeRoot(
    processes({
      1: 'systemd',
      400: 'sshd',
      812: 'falcon-sensor',
      900: 'very-long-edr-a',
      950: { comm: 'MainThread', argv: ['/opt/edr/bin/edr-agent', '--daemon'] },
    }),
  );

  it('is running when a configured name matches a process comm, naming the pid', async () => {
    const posture = await collectPosture({
      platform: 'linux',
      hostRoot: root,
      edrProcessNames: ['falcon-sensor', 'osqueryd'],
    });
    assert.equal(posture.edrRunning, true);
    assert.match(
      check(posture, 'edrRunning').evidence,
      /^falcon-sensor \(pid 812\) running, among 5 processes in /,
    );
  });

  it('matches a name longer than 15 characters by the start the kernel keeps in comm', async () => {
    const posture = await collectPosture({
      platform: 'linux',
      hostRoot: root,
      edrProcessNames: ['very-long-edr-agent-name'],
    });
    assert.equal(posture.edrRunning, true);
  });

  it('matches by the file name of argv[0] when the process renamed its main thread', async () => {
    const posture = await collectPosture({
      platform: 'linux',
      hostRoot: root,
      edrProcessNames: ['edr-agent'],
    });
    assert.equal(posture.edrRunning, true);
    assert.match(check(posture, 'edrRunning').evidence, /edr-agent \(pid 950\)/);
  });

  it('is not running when no process has a configured name', async () => {
    const posture = await collectPosture({
      platform: 'linux',
      hostRoot: root,
      edrProcessNames: ['osqueryd'],
    });
    assert.equal(posture.edrRunning, false);
    assert.match(check(posture, 'edrRunning').evidence, /^none of osqueryd among 5 processes in /);
  });

  it('is unknown when no EDR names are configured', async () => {
    const posture = await collectPosture({ platform: 'linux', hostRoot: root });
    assert.equal(posture.edrRunning, undefined);
    assert.equal(check(posture, 'edrRunning').evidence, 'no EDR process names configured');
  });

  it('is unknown when /proc hides other users processes (pid 1 not visible)', async () => {
    const hidden = fakeRoot(processes({ 4242: 'bash' }));
    const posture = await collectPosture({
      platform: 'linux',
      hostRoot: hidden,
      edrProcessNames: ['osqueryd'],
    });
    assert.equal(posture.edrRunning, undefined);
    assert.match(check(posture, 'edrRunning').evidence, /does not show pid 1.*hidepid/);
  });
});

describe('Linux firewall', () => {
  const dropPolicy = [
    'table inet filter {',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy drop;',
    '\t\tct state established,related accept',
    '\t\tiif "lo" accept',
    '\t\ttcp dport { 22, 443 } accept',
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t}',
    '}',
  ].join('\n');

  it('is on when nftables has an input-hook chain with policy drop', async () => {
    const runner = fakeRunner({ 'nft list ruleset': { stdout: dropPolicy } });
    const posture = await collectPosture({ platform: 'linux', runCommand: runner });
    assert.equal(posture.firewall, true);
    assert.equal(
      check(posture, 'firewall').evidence,
      'nft list ruleset: table inet filter chain input (hook input) has policy drop',
    );
  });

  it('is off when the nftables ruleset is empty and ufw is not installed', async () => {
    const runner = fakeRunner({ 'nft list ruleset': { stdout: '' } });
    const posture = await collectPosture({ platform: 'linux', runCommand: runner });
    assert.equal(posture.firewall, false);
    assert.equal(
      check(posture, 'firewall').evidence,
      'nft list ruleset: empty ruleset; ufw status: not installed',
    );
  });

  it('is on when ufw status says active', async () => {
    const runner = fakeRunner({
      'ufw status': {
        stdout: 'Status: active\n\nTo                         Action      From\n22/tcp ALLOW Anywhere\n',
      },
    });
    const posture = await collectPosture({ platform: 'linux', runCommand: runner });
    assert.equal(posture.firewall, true);
    assert.equal(check(posture, 'firewall').evidence, 'ufw status: Status: active');
  });

  it('is off when ufw is inactive and nftables filters nothing on input', async () => {
    const runner = fakeRunner({
      'nft list ruleset': {
        stdout:
          'table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmasquerade\n\t}\n}\n',
      },
      'ufw status': { stdout: 'Status: inactive\n' },
    });
    const posture = await collectPosture({ platform: 'linux', runCommand: runner });
    assert.equal(posture.firewall, false);
  });

  it('is unknown when neither nft nor ufw is installed', async () => {
    const posture = await collectPosture({ platform: 'linux', runCommand: fakeRunner({}) });
    assert.equal(posture.firewall, undefined);
    assert.equal(check(posture, 'firewall').evidence, 'neither nft nor ufw is installed');
  });

  it('is unknown when nft cannot read the ruleset (not root), with its error as evidence', async () => {
    const runner = fakeRunner({
      'nft list ruleset': { code: 1, stderr: 'Error: Could not process rule: Operation not permitted\n' },
    });
    const posture = await collectPosture({ platform: 'linux', runCommand: runner });
    assert.equal(posture.firewall, undefined);
    assert.match(
      check(posture, 'firewall').evidence,
      /^nft list ruleset: exit 1: Error: .*Operation not permitted;/,
    );
  });

  it('is unknown, not a rejection, when the runner itself throws', async () => {
    const runner = fakeRunner({
      'nft list ruleset': new Error('spawn EAGAIN'),
      'ufw status': new Error('spawn EAGAIN'),
    });
    const posture = await collectPosture({ platform: 'linux', runCommand: runner });
    assert.equal(posture.firewall, undefined);
    assert.match(check(posture, 'firewall').evidence, /spawn EAGAIN/);
  });

  it('runs no command when reading a host under another root', async () => {
    const runner = fakeRunner({ 'nft list ruleset': { stdout: dropPolicy } });
    const posture = await collectPosture({ platform: 'linux', hostRoot: fakeRoot({}), runCommand: runner });
    assert.deepEqual(runner.calls, []);
    assert.equal(posture.firewall, undefined);
    assert.match(check(posture, 'firewall').evidence, /^commands are not run when the host is read under /);
    assert.equal(posture.screenLock, undefined);
  });

  it('counts a drop or reject in a chain jumped to from the input hook, and ignores quoted words', () => {
    const firewalld = [
      'table inet firewalld {',
      '\tchain filter_INPUT {',
      '\t\ttype filter hook input priority filter + 10; policy accept;',
      '\t\tct state { established, related } accept',
      '\t\tjump filter_INPUT_ZONES',
      '\t}',
      '\tchain filter_INPUT_ZONES {',
      '\t\tiifname "eth0" goto filter_IN_public',
      '\t}',
      '\tchain filter_IN_public {',
      '\t\treject with icmpx admin-prohibited',
      '\t}',
      '}',
    ].join('\n');
    assert.deepEqual(nftFiltersInput(firewalld), {
      filters: true,
      evidence: 'table inet firewalld chain filter_INPUT (hook input) drops or rejects traffic',
    });
    const acceptOnly = [
      'table inet filter {',
      '\tset blocked {',
      '\t\ttype ipv4_addr',
      '\t\telements = { 10.0.0.1,',
      '\t\t\t     10.0.0.2 }',
      '\t}',
      '\tchain input {',
      '\t\ttype filter hook input priority 0; policy accept;',
      '\t\tcounter accept comment "drop later"',
      '\t}',
      '\tchain forward {',
      '\t\ttype filter hook forward priority 0; policy drop;',
      '\t}',
      '}',
    ].join('\n');
    assert.deepEqual(nftFiltersInput(acceptOnly), {
      filters: false,
      evidence: '1 table(s), 2 chain(s), none on the input hook drops or rejects',
    });
  });
});

describe('Linux screen lock', () => {
  const uid = process.getuid?.() ?? -1;
  const sessionRoot = (sessionUid: number) => {
    const root = fakeRoot({
      ...processes({ 1: 'systemd', 1500: 'gnome-shell' }),
      'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n',
    });
    chownSync(join(root, 'proc/1500'), sessionUid, sessionUid);
    return root;
  };
  const gsettings = (lock: string, idle: string) => ({
    'runuser -u alice -- gsettings get org.gnome.desktop.screensaver lock-enabled': { stdout: `${lock}\n` },
    'runuser -u alice -- gsettings get org.gnome.desktop.session idle-delay': { stdout: `uint32 ${idle}\n` },
  });

  it('is unknown without a GNOME session, and asks gsettings nothing', async () => {
    const root = fakeRoot(processes({ 1: 'systemd', 400: 'sshd' }));
    const runner = fakeRunner({});
    const lock = await linuxProbes({ root, run: runner, edrProcessNames: [] }).screenLock();
    assert.equal(lock.value, undefined);
    assert.match(
      lock.evidence,
      /^no GNOME session \(gnome-shell\) among 2 processes: .*servers without a screen/,
    );
    assert.deepEqual(runner.calls, []);
  });

  it('as root reads the session user settings through runuser: locked after an idle delay', {
    skip: uid !== 0 && 'needs root to give the fake session to another user',
  }, async () => {
    const runner = fakeRunner(gsettings('true', '300'));
    const lock = await linuxProbes({
      root: sessionRoot(1000),
      run: runner,
      edrProcessNames: [],
    }).screenLock();
    assert.deepEqual(lock, {
      value: true,
      evidence: 'gsettings get org.gnome.desktop.screensaver lock-enabled (as alice): true, idle-delay 300 s',
    });
  });

  it('is off when lock-enabled is true but idle-delay 0 means the screen never blanks', {
    skip: uid !== 0 && 'needs root to give the fake session to another user',
  }, async () => {
    const runner = fakeRunner(gsettings('true', '0'));
    const lock = await linuxProbes({
      root: sessionRoot(1000),
      run: runner,
      edrProcessNames: [],
    }).screenLock();
    assert.equal(lock.value, false);
    assert.match(lock.evidence, /idle-delay is 0/);
  });

  it('is off when lock-enabled is false', { skip: uid !== 0 && 'needs root' }, async () => {
    const runner = fakeRunner(gsettings('false', '300'));
    const lock = await linuxProbes({
      root: sessionRoot(1000),
      run: runner,
      edrProcessNames: [],
    }).screenLock();
    assert.equal(lock.value, false);
  });

  it('does not count gdm login screens (system uids) as a user session', {
    skip: uid !== 0 && 'needs root',
  }, async () => {
    const runner = fakeRunner({});
    const lock = await linuxProbes({ root: sessionRoot(120), run: runner, edrProcessNames: [] }).screenLock();
    assert.equal(lock.value, undefined);
    assert.deepEqual(runner.calls, []);
  });
});

describe('macOS', () => {
  const ioreg =
    '+-o J314sAP  <class IOPlatformExpertDevice>\n    "IOPlatformSerialNumber" = "C02ZX1ABCDEF"\n';
  const allOn = fakeRunner({
    '/usr/bin/sw_vers -productVersion': { stdout: '14.4.1\n' },
    '/usr/sbin/ioreg -c IOPlatformExpertDevice -d 2': { stdout: ioreg },
    '/usr/bin/fdesetup status': { stdout: 'FileVault is On.\n' },
    '/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate': {
      stdout: 'Firewall is enabled. (State = 1)\n',
    },
    '/usr/sbin/sysadminctl -screenLock status': {
      stderr: '2024-04-02 09:12:01.123 sysadminctl[4242:77] screenLock delay is 300 seconds\n',
    },
    '/bin/ps -axo comm': {
      stdout: 'COMM\n/sbin/launchd\n/Library/CS/falcond\n/usr/libexec/logd\n',
    },
  });

  it('reports every check on when FileVault, the firewall, the screen lock and the EDR agent are on', async () => {
    const posture = await collectPosture({
      platform: 'darwin',
      runCommand: allOn,
      edrProcessNames: ['falcond'],
    });
    assert.deepEqual(
      { ...posture, checks: undefined, hostname: undefined },
      {
        osFamily: 'macos',
        osVersion: '14.4.1',
        osName: 'macOS 14.4.1',
        hostname: undefined,
        serial: 'C02ZX1ABCDEF',
        diskEncrypted: true,
        firewall: true,
        screenLock: true,
        edrRunning: true,
        checks: undefined,
      },
    );
    assert.deepEqual(
      posture.checks.map((entry) => entry.evidence),
      [
        'Darwin kernel; /usr/bin/sw_vers -productVersion: 14.4.1',
        '/usr/bin/sw_vers -productVersion: 14.4.1',
        '/usr/bin/fdesetup status: FileVault is On.',
        '/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate: Firewall is enabled. (State = 1)',
        `/usr/sbin/sysadminctl -screenLock status (as ${userInfo().username}): delay is 300 seconds`,
        '/bin/ps -axo comm: falcond running, among 3 processes',
      ],
    );
    // sw_vers is asked once for the name and the version.
    assert.equal(allOn.calls.filter((line) => line.startsWith('/usr/bin/sw_vers')).length, 1);
  });

  it('reports every check off when FileVault, the firewall and the screen lock are off and no EDR runs', async () => {
    const runner = fakeRunner({
      '/usr/bin/sw_vers -productVersion': { stdout: '13.6\n' },
      '/usr/bin/fdesetup status': { stdout: 'FileVault is Off.\n' },
      '/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate': {
        stdout: 'Firewall is disabled. (State = 0)\n',
      },
      '/usr/sbin/sysadminctl -screenLock status': { stderr: 'sysadminctl[1:2] screenLock is off\n' },
      '/bin/ps -axo comm': { stdout: 'COMM\n/sbin/launchd\n' },
    });
    const posture = await collectPosture({
      platform: 'darwin',
      runCommand: runner,
      edrProcessNames: ['falcond'],
    });
    assert.equal(posture.osVersion, '13.6');
    assert.equal(posture.diskEncrypted, false);
    assert.equal(posture.firewall, false);
    assert.equal(posture.screenLock, false);
    assert.equal(posture.edrRunning, false);
    assert.equal(posture.serial, undefined);
  });

  it('counts FileVault that is off until the next restart as off', async () => {
    const runner = fakeRunner({
      '/usr/bin/fdesetup status': {
        stdout: 'FileVault is Off, but will be enabled after the next restart.\n',
      },
    });
    const posture = await collectPosture({ platform: 'darwin', runCommand: runner });
    assert.equal(posture.diskEncrypted, false);
  });

  it('is unknown, with the reason, for every tool that is missing or fails', async () => {
    const runner = fakeRunner({
      '/usr/bin/fdesetup status': { code: 1, stderr: 'Error: cannot access FileVault status\n' },
    });
    const posture = await collectPosture({
      platform: 'darwin',
      runCommand: runner,
      edrProcessNames: ['falcond'],
    });
    assert.equal(posture.osFamily, 'macos');
    for (const field of ['osVersion', 'diskEncrypted', 'firewall', 'screenLock', 'edrRunning'] as const) {
      assert.equal(posture[field], undefined, field);
    }
    assert.equal(
      check(posture, 'diskEncrypted').evidence,
      '/usr/bin/fdesetup status: exit 1: Error: cannot access FileVault status',
    );
    assert.equal(
      check(posture, 'firewall').evidence,
      '/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate: not installed',
    );
  });
});

describe('collectPosture', () => {
  it('rejects an unsupported platform with ERR_DEVICE_PLATFORM', async () => {
    await assert.rejects(collectPosture({ platform: 'win32' }), (error) =>
      isVigilError(error, 'ERR_DEVICE_PLATFORM'),
    );
  });

  it('rejects a relative hostRoot and an EDR name with a slash as caller mistakes', async () => {
    await assert.rejects(collectPosture({ platform: 'linux', hostRoot: 'host' }), TypeError);
    await assert.rejects(collectPosture({ platform: 'linux', edrProcessNames: ['/opt/edr'] }), TypeError);
  });

  it('collects real posture on this machine: linux, a kernel version and one check per field', async () => {
    const posture = await collectPosture({ edrProcessNames: ['falcon-sensor'] });
    assert.equal(posture.osFamily, 'linux');
    assert.match(posture.osVersion ?? '', /^\d+\.\d+(\.\d+)?$/);
    assert.ok(posture.hostname.length > 0);
    assert.deepEqual(
      posture.checks.map((entry) => entry.field),
      POSTURE_FIELDS,
    );
    for (const entry of posture.checks) {
      assert.ok(entry.evidence.length > 0, `${entry.field} has evidence`);
      assert.ok(!entry.evidence.includes('\n'), `${entry.field} evidence is one line`);
      assert.ok(['string', 'boolean', 'undefined'].includes(typeof entry.value));
      if (entry.field !== 'osFamily' && entry.field !== 'osVersion') {
        assert.equal(posture[entry.field], entry.value, `${entry.field} matches its check`);
      }
    }
  });
});

describe('the default command runner', () => {
  it('resolves undefined for a program that is not installed', async () => {
    assert.equal(await runCommand('vigil-no-such-program', []), undefined);
  });

  it('resolves the exit code and output of a failing program without a shell', async () => {
    const result = await runCommand(process.execPath, [
      '-e',
      'console.log("out $HOME"); console.error("err"); process.exit(3)',
    ]);
    assert.deepEqual(result, { code: 3, stdout: 'out $HOME\n', stderr: 'err\n' });
  });
});

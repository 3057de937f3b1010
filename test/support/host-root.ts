import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The dm uuid of a LUKS2 mapping, as /sys/block/dm-N/dm/uuid shows it. */
export const LUKS_UUID = 'CRYPT-LUKS2-5f4dcc3b5aa765d61d8327deb882cf99-cryptroot';

/** A fake host root: paths to file contents, or null for an (empty) folder. */
export function makeHostRoot(base: string, tree: Record<string, string | null>): string {
  const root = mkdtempSync(join(base, 'root-'));
  for (const [path, content] of Object.entries(tree)) {
    const full = join(root, path);
    if (content === null) {
      mkdirSync(full, { recursive: true });
    } else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  }
  return root;
}

/** pid 1's mountinfo with `/` mounted from `source` (device number `majorMinor`). */
export function rootMount(majorMinor: string, fsType: string, source: string): Record<string, string> {
  return {
    'proc/1/mountinfo':
      '22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw\n' +
      `27 1 ${majorMinor} / / rw,relatime shared:1 - ${fsType} ${source} rw,errors=remount-ro\n` +
      '30 27 0:27 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw\n',
  };
}

/** A sysfs block device; `slaves` lists what it sits on (empty for a disk). */
export function blockDevice(
  name: string,
  majorMinor: string,
  options: {
    uuid?: string;
    mapperName?: string;
    slaves?: string[];
    partitions?: Record<string, string>;
  } = {},
): Record<string, string | null> {
  const tree: Record<string, string | null> = {
    [`sys/block/${name}/dev`]: `${majorMinor}\n`,
    [`sys/block/${name}/slaves`]: null,
  };
  if (options.uuid !== undefined) tree[`sys/block/${name}/dm/uuid`] = `${options.uuid}\n`;
  if (options.mapperName !== undefined) tree[`sys/block/${name}/dm/name`] = `${options.mapperName}\n`;
  for (const slave of options.slaves ?? []) tree[`sys/block/${name}/slaves/${slave}`] = null;
  for (const [partition, number] of Object.entries(options.partitions ?? {})) {
    tree[`sys/block/${name}/${partition}/dev`] = `${number}\n`;
    tree[`sys/block/${name}/${partition}/partition`] = '1\n';
  }
  return tree;
}

/** A Linux host whose root filesystem sits on LUKS2, for the agent's --host-root. */
export function encryptedLinuxRoot(base: string): string {
  return makeHostRoot(base, {
    ...rootMount('253:0', 'ext4', '/dev/mapper/cryptroot'),
    ...blockDevice('dm-0', '253:0', { uuid: LUKS_UUID, mapperName: 'cryptroot', slaves: ['sda2'] }),
    ...blockDevice('sda', '8:0', { partitions: { sda1: '8:1', sda2: '8:2' } }),
    'etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    'proc/sys/kernel/osrelease': '6.1.0-18-amd64\n',
  });
}

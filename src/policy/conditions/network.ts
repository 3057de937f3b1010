import { bit, UNKNOWN } from '../reasons.ts';
import type { Leaf } from './leaf.ts';

const DENIED = bit('source-ip-denied');
const MISSING = DENIED | UNKNOWN;

/** A parsed CIDR: IPv4 as one 32-bit word, IPv6 as four, each with its mask. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly words: Uint32Array;
  readonly masks: Uint32Array;
}

/**
 * Parses an IPv4 dotted quad into an unsigned 32-bit number without allocating;
 * -1 when malformed. Leading zeros are rejected: "010.0.0.1" means octal to some parsers.
 */
export function parseIpv4(text: string, start = 0): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let index = start; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 48 && code <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (code - 48);
      digits++;
      if (octet > 255) return -1;
    } else if (code === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

/** Parses an IPv6 address (with optional embedded IPv4 and zone) into four words; false when malformed. */
export function parseIpv6(raw: string, out: Uint32Array): boolean {
  const zone = raw.indexOf('%');
  const text = zone >= 0 ? raw.slice(0, zone) : raw;
  if (text.length < 2 || text.length > 45) return false;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups: number[] = [];
  const parseSide = (side: string, allowV4: boolean): number[] | undefined => {
    if (side === '') return [];
    const parts = side.split(':');
    const words: number[] = [];
    for (let index = 0; index < parts.length; index++) {
      const part = parts[index] as string;
      if (allowV4 && index === parts.length - 1 && part.includes('.')) {
        const v4 = parseIpv4(part);
        if (v4 < 0) return undefined;
        words.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
        words.push(Number.parseInt(part, 16));
      }
    }
    return words;
  };
  const head = parseSide(halves[0] as string, halves.length === 1);
  const tail = halves.length === 2 ? parseSide(halves[1] as string, true) : [];
  if (head === undefined || tail === undefined) return false;
  if (halves.length === 1) {
    if (head.length !== 8) return false;
    groups.push(...head);
  } else {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return false;
    groups.push(...head, ...new Array<number>(fill).fill(0), ...tail);
  }
  for (let index = 0; index < 4; index++) {
    out[index] = (((groups[index * 2] as number) << 16) | (groups[index * 2 + 1] as number)) >>> 0;
  }
  return true;
}

function maskWords(prefix: number, count: number): Uint32Array {
  const masks = new Uint32Array(count);
  for (let index = 0; index < count; index++) {
    const bits = Math.max(0, Math.min(32, prefix - index * 32));
    masks[index] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  }
  return masks;
}

/** "10.0.0.0/8", "2001:db8::/32" or a bare address; undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const v4 = parseIpv4(address);
  if (v4 >= 0) {
    const prefix = prefixText === undefined ? 32 : Number(prefixText);
    if (prefix > 32) return undefined;
    const masks = maskWords(prefix, 1);
    return { family: 4, words: Uint32Array.of((v4 & (masks[0] as number)) >>> 0), masks };
  }
  const words = new Uint32Array(4);
  if (address.includes('%') || !parseIpv6(address, words)) return undefined;
  const prefix = prefixText === undefined ? 128 : Number(prefixText);
  if (prefix > 128) return undefined;
  const masks = maskWords(prefix, 4);
  for (let index = 0; index < 4; index++)
    words[index] = ((words[index] as number) & (masks[index] as number)) >>> 0;
  return { family: 6, words, masks };
}

const scratch = new Uint32Array(4);

function isV4Mapped(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/**
 * `source_ip: [CIDR, ...]`. IPv4-mapped IPv6 addresses (::ffff:10.1.2.3, what a dual-stack
 * socket reports) are matched as the IPv4 address they carry.
 */
export function sourceIp(cidrs: readonly string[]): Leaf {
  const parsed = cidrs.map((text) => parseCidr(text) as Cidr);
  const v4Addr = parsed.filter((cidr) => cidr.family === 4).map((cidr) => cidr.words[0] as number);
  const v4Mask = parsed.filter((cidr) => cidr.family === 4).map((cidr) => cidr.masks[0] as number);
  const v6 = parsed.filter((cidr) => cidr.family === 6);
  const matchV4 = (ip: number): number => {
    for (let index = 0; index < v4Addr.length; index++) {
      if ((ip & (v4Mask[index] as number)) >>> 0 === v4Addr[index]) return 0;
    }
    return DENIED;
  };
  return {
    reasons: MISSING,
    evaluate: (input) => {
      const text = input.sourceIp;
      if (text === undefined) return MISSING;
      const ip = parseIpv4(text);
      if (ip >= 0) return matchV4(ip);
      if (!parseIpv6(text, scratch)) return MISSING;
      if (isV4Mapped(scratch)) return matchV4(scratch[3] as number);
      for (const cidr of v6) {
        if (
          ((scratch[0] as number) & (cidr.masks[0] as number)) >>> 0 === cidr.words[0] &&
          ((scratch[1] as number) & (cidr.masks[1] as number)) >>> 0 === cidr.words[1] &&
          ((scratch[2] as number) & (cidr.masks[2] as number)) >>> 0 === cidr.words[2] &&
          ((scratch[3] as number) & (cidr.masks[3] as number)) >>> 0 === cidr.words[3]
        ) {
          return 0;
        }
      }
      return DENIED;
    },
  };
}

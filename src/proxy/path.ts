/**
 * The one normalization of a request target. The path policy sees is exactly the path
 * the upstream gets, so no parser difference between Vigil and the upstream can turn an
 * allowed path into a denied one.
 */
export type TargetProblem =
  | 'not-origin-form'
  | 'encoded-slash'
  | 'encoded-backslash'
  | 'backslash'
  | 'nul'
  | 'control-character'
  | 'double-encoding'
  | 'bad-percent-encoding'
  | 'encoded-dot-segment'
  | 'path-parameter'
  | 'fragment'
  | 'reserved-path'
  | 'escapes-root'
  | 'too-long';

export interface NormalizedTarget {
  /** Normalized path: dot segments resolved, duplicate slashes merged, unreserved characters decoded. */
  path: string;
  /** Query string including its `?`, untouched; empty when absent. */
  search: string;
}

/** Longest request target accepted; far above real URLs, far below header limits. */
export const MAX_TARGET_LENGTH = 8192;

const UNRESERVED = /[A-Za-z0-9\-._~]/;
/** A path with none of these is already in normal form (see the fast path below). */
const NEEDS_WORK = /[%\\;#\x00-\x1f\x7f]|\/\/|\/\.\.?(?:\/|$)/;

/**
 * Normalizes an origin-form request target (`/a/b?q`). Returns the problem for targets
 * that would mean different things to different parsers; the caller answers 400.
 */
export function normalizeTarget(target: string): NormalizedTarget | { problem: TargetProblem } {
  if (target.length > MAX_TARGET_LENGTH) return { problem: 'too-long' };
  // Absolute-form and authority-form targets name a host other than the Host header.
  if (target.charCodeAt(0) !== 47 /* / */) return { problem: 'not-origin-form' };
  const queryAt = target.indexOf('?');
  const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
  const search = queryAt === -1 ? '' : target.slice(queryAt);
  if (search.includes('\0') || /%00/.test(search)) return { problem: 'nul' };
  // A fragment is never part of a request target (RFC 9112 §3.2); an upstream that takes
  // `/admin#/users` for `/admin/users` would see another path than policy saw.
  if (search.includes('#')) return { problem: 'fragment' };
  // Most paths have no percent escape, no empty or dot segment and nothing refused: the
  // loop below would copy them unchanged, so one regular expression decides instead.
  if (!NEEDS_WORK.test(rawPath)) return { path: rawPath, search };
  const path = normalizePath(rawPath);
  if (typeof path !== 'string') return path;
  // `/./.vigil/…` or `//.vigil/…`: Vigil's own paths are only answered when asked for plainly.
  if (path.startsWith('/.vigil/')) return { problem: 'reserved-path' };
  return { path, search };
}

/** The full normalization of an origin-form path (exported for the test that pins the fast path to it). */
export function normalizePath(rawPath: string): string | { problem: TargetProblem } {
  let decoded = '';
  for (let index = 0; index < rawPath.length; index++) {
    const char = rawPath[index] as string;
    const code = rawPath.charCodeAt(index);
    if (code === 0) return { problem: 'nul' };
    if (code < 0x20 || code === 0x7f) return { problem: 'control-character' };
    if (char === '\\') return { problem: 'backslash' };
    if (char === ';') return { problem: 'path-parameter' };
    if (char === '#') return { problem: 'fragment' };
    if (char !== '%') {
      decoded += char;
      continue;
    }
    const hex = rawPath.slice(index + 1, index + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { problem: 'bad-percent-encoding' };
    const byte = Number.parseInt(hex, 16);
    if (byte === 0) return { problem: 'nul' };
    if (byte === 0x2f) return { problem: 'encoded-slash' };
    if (byte === 0x5c) return { problem: 'encoded-backslash' };
    if (byte === 0x25) return { problem: 'double-encoding' };
    if (byte === 0x3b) return { problem: 'path-parameter' };
    if (byte < 0x20 || byte === 0x7f) return { problem: 'control-character' };
    const decodedChar = String.fromCharCode(byte);
    if (byte < 0x80 && UNRESERVED.test(decodedChar)) {
      if (decodedChar === '.' && isDotSegmentAt(rawPath, index)) return { problem: 'encoded-dot-segment' };
      decoded += decodedChar;
    } else {
      decoded += `%${hex.toUpperCase()}`;
    }
    index += 2;
  }

  const segments: string[] = [];
  const parts = decoded.split('/');
  for (let index = 1; index < parts.length; index++) {
    const segment = parts[index] as string;
    const last = index === parts.length - 1;
    if (segment === '' && !last) continue;
    if (segment === '.') {
      if (last) segments.push('');
      continue;
    }
    if (segment === '..') {
      if (segments.length === 0) return { problem: 'escapes-root' };
      segments.pop();
      if (last) segments.push('');
      continue;
    }
    segments.push(segment);
  }
  return `/${segments.join('/')}`;
}

/** True when the `%2e` at `index` is part of a `.` or `..` segment once decoded. */
function isDotSegmentAt(path: string, index: number): boolean {
  let start = index;
  while (start > 0 && path[start - 1] !== '/') start--;
  let end = index;
  while (end < path.length && path[end] !== '/') end++;
  const segment = path.slice(start, end).replace(/%2e/gi, '.');
  return segment === '.' || segment === '..';
}

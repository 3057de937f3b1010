/** Longest Cookie header read; the proxy listener already caps headers at 16 KiB. */
const MAX_COOKIE_HEADER = 16 * 1024;

/** Longest Cookie header whose parse is remembered, and how many are (per cookie name). */
const MEMO_MAX_HEADER = 4096;
const MEMO_ENTRIES = 512;
/** Found cookie values by Cookie header, per cookie name; null stands for "absent". */
const memos = new Map<string, Map<string, string | null>>();

/**
 * The value of one cookie from a Cookie header, or undefined. A browser sends the same
 * Cookie header with every request, so the parse is remembered per distinct header
 * (bounded: past the bound the memo starts over).
 */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text || text.length > MAX_COOKIE_HEADER) return undefined;
  if (text.length > MEMO_MAX_HEADER) return parseCookie(text, name);
  let memo = memos.get(name);
  if (memo === undefined) {
    if (memos.size >= 8) memos.clear();
    memo = new Map();
    memos.set(name, memo);
  }
  let found = memo.get(text);
  if (found === undefined) {
    found = parseCookie(text, name) ?? null;
    if (memo.size >= MEMO_ENTRIES) memo.clear();
    memo.set(text, found);
  }
  return found ?? undefined;
}

function parseCookie(text: string, name: string): string | undefined {
  for (const part of text.split(';')) {
    const index = part.indexOf('=');
    if (index < 0) continue;
    if (part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

/** Set-Cookie for a Vigil cookie: HttpOnly, Secure, SameSite=Lax always. */
export function setCookie(
  name: string,
  value: string,
  options: { maxAgeS?: number; path?: string } = {},
): string {
  const parts = [`${name}=${value}`, `Path=${options.path ?? '/'}`, 'HttpOnly', 'Secure', 'SameSite=Lax'];
  if (options.maxAgeS !== undefined) parts.push(`Max-Age=${Math.max(0, Math.floor(options.maxAgeS))}`);
  return parts.join('; ');
}

export function clearCookie(name: string, path = '/'): string {
  return setCookie(name, '', { maxAgeS: 0, path });
}

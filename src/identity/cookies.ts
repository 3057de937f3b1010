/** Longest Cookie header read; the proxy listener already caps headers at 16 KiB. */
const MAX_COOKIE_HEADER = 16 * 1024;

/** The value of one cookie from a Cookie header, or undefined. */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text || text.length > MAX_COOKIE_HEADER) return undefined;
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

const MAX_RETURN_PATH = 2048;
const PLACEHOLDER_ORIGIN = 'http://vigil.invalid';

/**
 * The post-login return path if it is a same-origin relative path, else undefined.
 * Refuses `//evil`, `/\evil`, `https://evil`, control characters and encoded forms of
 * them (decoded up to three times, as browsers and upstreams might).
 */
export function safeReturnPath(candidate: string | null | undefined): string | undefined {
  if (candidate === null || candidate === undefined || candidate === '') return undefined;
  if (candidate.length > MAX_RETURN_PATH) return undefined;
  // Raw whitespace is never part of a URL a browser sends; encoded (%20) is fine.
  if (/\s/.test(candidate)) return undefined;
  let current = candidate;
  for (let round = 0; round < 3; round++) {
    if (!looksRelative(current)) return undefined;
    let decoded: string;
    try {
      decoded = decodeURIComponent(current);
    } catch {
      return undefined;
    }
    if (decoded === current) break;
    current = decoded;
  }
  if (!looksRelative(current)) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(candidate, PLACEHOLDER_ORIGIN);
  } catch {
    return undefined;
  }
  if (parsed.origin !== PLACEHOLDER_ORIGIN) return undefined;
  return `${parsed.pathname}${parsed.search}${parsed.hash}`;
}

function looksRelative(path: string): boolean {
  if (!path.startsWith('/')) return false;
  // `//host` and `/\host` are protocol-relative to browsers; any backslash is suspect.
  if (path.startsWith('//') || path.includes('\\')) return false;
  // Control characters (tabs and newlines are stripped by URL parsers, CR/LF split headers).
  if (/[\u0000-\u001f\u007f]/.test(path)) return false;
  return true;
}

/** Longest group list taken from a token; a larger one is cut, never looped over unbounded. */
export const MAX_GROUPS = 1000;
const MAX_PATH_DEPTH = 8;

/**
 * Reads a claim by dotted path (`realm_access.roles`). A claim whose name itself has a
 * dot (`https://example.com/groups`) is tried whole first, as IdPs use URLs as names.
 */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  const parts = path.split('.');
  if (parts.length > MAX_PATH_DEPTH) return undefined;
  let current: unknown = claims;
  for (const part of parts) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** A list of strings from a claim that may be an array, a single string or absent. */
export function stringList(value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const item of value) {
    if (out.length >= MAX_GROUPS) break;
    if (typeof item === 'string' && item !== '') out.push(item);
  }
  return out;
}

export function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

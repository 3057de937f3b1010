import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/**
 * Compares two secrets in time that depends only on their lengths' digest, never on
 * where they first differ. Every secret comparison in Vigil goes through here.
 */
export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  // Hashing first makes both sides the same length, so the length itself does not leak
  // through an early return.
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

export type SecretFileProblem = 'missing' | 'not-a-file' | 'too-open' | 'empty';

/**
 * Reads a secret from a file that only its owner may read. Returns the problem instead
 * of throwing so that callers can word the error for their own context (config field,
 * CLI flag).
 */
export function readSecretFile(
  path: string,
): { value: string } | { problem: SecretFileProblem; mode?: number } {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    return { problem: 'missing' };
  }
  if (!stat.isFile()) return { problem: 'not-a-file' };
  const mode = stat.mode & 0o777;
  if ((mode & 0o077) !== 0) return { problem: 'too-open', mode };
  const value = readFileSync(path, 'utf8').trim();
  if (value === '') return { problem: 'empty' };
  return { value };
}

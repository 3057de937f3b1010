import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** A person-readable sentence for a secret file problem, with the fix where there is one. */
export function describeSecretProblem(
  path: string,
  read: { problem: SecretFileProblem; mode?: number },
): string {
  switch (read.problem) {
    case 'missing':
      return `${path} does not exist`;
    case 'not-a-file':
      return `${path} is not a regular file`;
    case 'too-open':
      return `${path} is readable by group or others (mode 0${(read.mode ?? 0).toString(8)}); run chmod 600 ${path}`;
    case 'empty':
      return `${path} is empty`;
  }
}

/**
 * The secret in `path`, or a new one from `create` written there (0600) on first use.
 * Two processes starting at once on one data dir end up with the same secret: the file
 * is created exclusively and the loser reads the winner's. Throws with a message that
 * says what to fix when the file exists but cannot be used.
 */
export function readOrCreateSecretFile(path: string, create: () => string): string {
  const existing = readSecretFile(path);
  if ('value' in existing) return existing.value;
  if (existing.problem !== 'missing') throw new Error(describeSecretProblem(path, existing));
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const value = create();
  try {
    writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return value.trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const raced = readSecretFile(path);
    if ('value' in raced) return raced.value;
    throw new Error(describeSecretProblem(path, raced));
  }
}

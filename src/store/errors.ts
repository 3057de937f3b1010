/**
 * True when an insert failed on a unique or primary key constraint, on either dialect:
 * the way a "first writer wins" claim (a replayed report id, a used code) is decided
 * across replicas.
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message, errcode } = error as { code?: unknown; message?: unknown; errcode?: unknown };
  // PostgreSQL unique_violation; SQLite SQLITE_CONSTRAINT_PRIMARYKEY (1555) / _UNIQUE (2067).
  if (code === '23505') return true;
  if (errcode === 1555 || errcode === 2067) return true;
  return typeof message === 'string' && /UNIQUE constraint failed/.test(message);
}

/** True when SQLite refused for a lock another connection holds (SQLITE_BUSY, SQLITE_LOCKED). */
export function isSqliteBusy(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { errcode } = error as { errcode?: unknown };
  // Extended codes keep the primary code in the low byte (SQLITE_BUSY_SNAPSHOT is 517).
  return typeof errcode === 'number' && ((errcode & 0xff) === 5 || (errcode & 0xff) === 6);
}

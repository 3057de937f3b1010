const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses "90s", "15m", "4h", "7d", "1h30m" into milliseconds; undefined when malformed.
 * Compound forms are read left to right, each part with its own unit.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.length > 64) return undefined;
  let total = 0;
  for (const part of trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g) ?? []) {
    const match = DURATION.exec(part);
    if (!match) return undefined;
    total += Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  }
  const consumed = (trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g) ?? []).join('');
  return consumed === trimmed ? total : undefined;
}

/** Renders milliseconds the way a person writes a duration: 4h, 15m, 1h30m. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['d', UNIT_MS.d],
    ['h', UNIT_MS.h],
    ['m', UNIT_MS.m],
    ['s', UNIT_MS.s],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}

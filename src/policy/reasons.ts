/**
 * The closed set of machine-readable reasons a decision carries. The proxy, the audit
 * log and the console all switch on these strings, so adding one is an interface change.
 */
export const REASONS = [
  'user-unauthenticated',
  'user-unauthorized',
  'group-missing',
  'claim-mismatch',
  'mfa-required',
  'auth-too-old',
  'device-missing',
  'device-unmanaged',
  'device-revoked',
  'device-denied',
  'device-posture-failed',
  'posture-stale',
  'outside-time-window',
  'source-ip-denied',
  'method-denied',
  'path-denied',
  'header-mismatch',
  'workload-denied',
  'client-cert-missing',
  'no-route',
  'no-matching-rule',
  'denied-by-rule',
] as const;

export type Reason = (typeof REASONS)[number];

/**
 * Conditions report failure as a bit set of reasons so that combining them (and, or,
 * a whole policy) is integer arithmetic and the hot path allocates nothing. Bit 30 marks
 * "unknown": an attribute the condition needs was absent.
 */
export const UNKNOWN = 1 << 30;
export const REASON_MASK = UNKNOWN - 1;

const BIT = new Map<Reason, number>(REASONS.map((reason, index) => [reason, 1 << index]));

export function bit(reason: Reason): number {
  return BIT.get(reason) as number;
}

/** Reasons in declaration order, so the same bits always render the same array. */
export function reasonsOf(bits: number): Reason[] {
  const out: Reason[] = [];
  for (let index = 0; index < REASONS.length; index++) {
    if (bits & (1 << index)) out.push(REASONS[index] as Reason);
  }
  return out;
}

export function isReason(value: string): value is Reason {
  return BIT.has(value as Reason);
}

/**
 * What a `not` reports when the condition it negates held: identity conditions become
 * `user-unauthorized` ("you are who the rule excludes"); the others keep their meaning.
 */
export function negatedBits(bits: number): number {
  const identity =
    bit('user-unauthenticated') | bit('group-missing') | bit('claim-mismatch') | bit('mfa-required');
  return bits & identity ? (bits & ~identity) | bit('user-unauthorized') : bits;
}

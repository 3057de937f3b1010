import { bit } from '../reasons.ts';
import type { TimeSpec } from '../schema.ts';
import { WEEKDAYS } from '../schema.ts';
import type { Leaf } from './leaf.ts';

const OUTSIDE = bit('outside-time-window');

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** "08:00" -> minutes after midnight; "24:00" is allowed as the end of a day. */
export function parseClock(text: string): number | undefined {
  const match = /^(\d{2}):(\d{2})$/.exec(text);
  if (!match) return undefined;
  const hours = Number(match[1]);
  const minutes = Number(match[2]);
  if (minutes > 59 || hours > 24 || (hours === 24 && minutes !== 0)) return undefined;
  return hours * 60 + minutes;
}

/**
 * ISO 8601 date-time with an offset ("2026-03-01T09:00:00Z", "...+01:00") or a date
 * ("2026-03-01", meaning 00:00 UTC that day); undefined otherwise. A date-time without
 * an offset is refused: it would mean a different instant on every server.
 */
export function parseInstant(text: string): number | undefined {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    const ms = Date.parse(`${text}T00:00:00Z`);
    return Number.isNaN(ms) ? undefined : ms;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Weekday (0 = Sunday) and minute of day of an instant in one zone. */
interface LocalMinute {
  minute: number;
  weekday: number;
  minuteOfDay: number;
}

const WEEKDAY_INDEX: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/**
 * Local wall-clock time per zone. Formatting is the slow part and its answer only
 * changes once a minute, so each zone keeps its last minute and the hot path is one
 * division and one comparison.
 */
class ZoneClock {
  readonly #format: Intl.DateTimeFormat;
  readonly #last: LocalMinute = { minute: Number.NaN, weekday: 0, minuteOfDay: 0 };

  constructor(zone: string) {
    this.#format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
  }

  at(now: number): LocalMinute {
    const minute = Math.floor(now / 60_000);
    const last = this.#last;
    if (last.minute === minute) return last;
    let hour = 0;
    let minutes = 0;
    let weekday = 0;
    for (const part of this.#format.formatToParts(minute * 60_000)) {
      if (part.type === 'hour') hour = Number(part.value);
      else if (part.type === 'minute') minutes = Number(part.value);
      else if (part.type === 'weekday') weekday = WEEKDAY_INDEX[part.value] ?? 0;
    }
    last.minute = minute;
    last.weekday = weekday;
    last.minuteOfDay = hour * 60 + minutes;
    return last;
  }
}

const zones = new Map<string, ZoneClock>();

export function zoneClock(zone: string): ZoneClock {
  let clock = zones.get(zone);
  if (clock === undefined) {
    clock = new ZoneClock(zone);
    zones.set(zone, clock);
  }
  return clock;
}

/**
 * `time: { zone, weekdays, hours: { from, to }, valid_from, valid_until }`. Hours are
 * local wall-clock time in `zone` (UTC when omitted), `from` inclusive and `to`
 * exclusive; a window whose end is before its start wraps past midnight (22:00-06:00),
 * and then belongs to the weekday it starts on. `valid_until` is exclusive.
 */
export function timeWindow(spec: TimeSpec): Leaf {
  const from =
    spec.valid_from === undefined ? Number.NEGATIVE_INFINITY : (parseInstant(spec.valid_from) as number);
  const until =
    spec.valid_until === undefined ? Number.POSITIVE_INFINITY : (parseInstant(spec.valid_until) as number);
  const needsLocal = spec.weekdays !== undefined || spec.hours !== undefined;
  const clock = needsLocal ? zoneClock(spec.zone ?? 'UTC') : undefined;
  let days = 0x7f;
  if (spec.weekdays !== undefined) {
    days = 0;
    for (const day of spec.weekdays) days |= 1 << WEEKDAYS.indexOf(day);
  }
  const start = spec.hours === undefined ? 0 : (parseClock(spec.hours.from) as number);
  const end = spec.hours === undefined ? 1440 : (parseClock(spec.hours.to) as number);
  const wraps = end < start;

  return {
    reasons: OUTSIDE,
    evaluate: (input) => {
      const now = input.now;
      if (now < from || now >= until) return OUTSIDE;
      if (clock === undefined) return 0;
      const local = clock.at(now);
      const minute = local.minuteOfDay;
      if (!wraps) return (days >> local.weekday) & 1 && minute >= start && minute < end ? 0 : OUTSIDE;
      if (minute >= start) return (days >> local.weekday) & 1 ? 0 : OUTSIDE;
      // After midnight in a wrapping window: the window opened on the previous day.
      const previous = (local.weekday + 6) % 7;
      return minute < end && (days >> previous) & 1 ? 0 : OUTSIDE;
    },
  };
}

import { builtInDetector, type Detector } from '../detect.ts';

export interface AfterHoursOptions {
  /** IANA time zone the working hours are in, e.g. `Europe/Berlin`. */
  timeZone: string;
  /** Working days, ISO numbering: 1 = Monday … 7 = Sunday. */
  workdays?: readonly number[];
  /** `HH:MM`, inclusive. */
  start?: string;
  /** `HH:MM`, exclusive. */
  end?: string;
}

export const AFTER_HOURS_DEFAULTS = { workdays: [1, 2, 3, 4, 5], start: '08:00', end: '19:00' } as const;

const WEEKDAY: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

function minutesOf(text: string, name: string): number {
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  if (!match) throw new TypeError(`${name} must be HH:MM`);
  return Number(match[1]) * 60 + Number(match[2]);
}

/**
 * Access outside working hours in a named time zone. Every decision with a user outside
 * the hours is flagged `after-hours`; an allowed one raises an alert keyed by the user
 * (a denied one is the policy already doing its job).
 */
export function afterHoursDetector(options: AfterHoursOptions): Detector {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: options.timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
  } catch {
    throw new TypeError(`unknown time zone ${options.timeZone}`);
  }
  const workdays = new Set(options.workdays ?? AFTER_HOURS_DEFAULTS.workdays);
  for (const day of workdays) {
    if (!Number.isInteger(day) || day < 1 || day > 7)
      throw new TypeError('workdays are 1 (Monday) to 7 (Sunday)');
  }
  const start = minutesOf(options.start ?? AFTER_HOURS_DEFAULTS.start, 'start');
  const end = minutesOf(options.end ?? AFTER_HOURS_DEFAULTS.end, 'end');
  // Formatting a date in a time zone is the expensive part; events arrive in bursts
  // within the same minute, so the last minute's answer is kept.
  let cachedMinute = Number.NaN;
  let cachedOutside = false;
  const outside = (time: number): boolean => {
    const minute = Math.floor(time / 60_000);
    if (minute === cachedMinute) return cachedOutside;
    let weekday = 0;
    let hour = 0;
    let minutes = 0;
    for (const part of format.formatToParts(time)) {
      if (part.type === 'weekday') weekday = WEEKDAY[part.value] ?? 0;
      else if (part.type === 'hour') hour = Number(part.value);
      else if (part.type === 'minute') minutes = Number(part.value);
    }
    const of = hour * 60 + minutes;
    const inside =
      workdays.has(weekday) && (start <= end ? of >= start && of < end : of >= start || of < end);
    cachedMinute = minute;
    cachedOutside = !inside;
    return cachedOutside;
  };
  return builtInDetector({
    name: 'after-hours',
    spec: { type: 'after-hours', options: { ...options } },
    observe(event, report) {
      if (event.kind !== 'decision' || event.user === null || !outside(event.time)) return;
      report.flag('after-hours');
      if (event.decision !== 'allow') return;
      report.alert({
        key: event.user,
        severity: 'low',
        summary: `${event.user} accessed ${event.route ?? event.path} outside working hours (${options.timeZone})`,
        risk: ['after-hours'],
        user: event.user,
        device: event.device,
        sourceIp: event.sourceIp,
        evidence: [event.requestId],
      });
    },
  });
}

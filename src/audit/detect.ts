import type { AfterHoursOptions } from './detectors/after-hours.ts';
import type { BruteForceOptions } from './detectors/brute-force.ts';
import type { LateralMovementOptions } from './detectors/lateral-movement.ts';
import type { NewDeviceOptions } from './detectors/new-device.ts';
import type { TokenReplayOptions } from './detectors/token-replay.ts';
import type { AlertEvent, AuditEvent, RiskFlag } from './events.ts';

/** What a detector raises; the pipeline adds kind, time and detector name. */
export type AlertInput = Omit<AlertEvent, 'kind' | 'time' | 'detector'>;

export interface DetectorReport {
  /** Marks the observed event with a risk flag (stored with the event). */
  flag(risk: RiskFlag): void;
  /** Raises an alert; deduplicated per (detector, key) by the pipeline. */
  alert(alert: AlertInput): void;
}

/**
 * Looks at each event as the writer takes it off the queue (never on the request path).
 * Windows run on event time, so replaying a log gives the same flags and alerts.
 */
export interface Detector {
  readonly name: string;
  observe(event: AuditEvent, report: DetectorReport): void;
  /**
   * How to build the same detector again (built-ins have one). When every detector of a
   * log has a spec, detection runs in the writer's thread instead of the event loop's.
   */
  readonly spec?: DetectorSpec;
}

/** Detectors made by the built-in factories, whose spec rebuilds exactly them. */
const builtIns = new WeakSet<Detector>();

/**
 * Marks a detector made by a built-in factory. Only these run in the writer's thread:
 * an object copied from one (`{ ...bruteForceDetector(), observe }`) carries its spec
 * but not its behaviour, so it stays on the calling thread where its own code runs.
 */
export function builtInDetector<T extends Detector>(detector: T): T {
  builtIns.add(detector);
  return detector;
}

/** The spec that rebuilds `detector` in another thread; undefined unless it is a built-in. */
export function specOf(detector: Detector): DetectorSpec | undefined {
  return builtIns.has(detector) ? detector.spec : undefined;
}

/** A built-in detector as data: its type and options (see detectors/specs.ts). */
export type DetectorSpec =
  | { type: 'after-hours'; options: AfterHoursOptions }
  | { type: 'brute-force'; options: BruteForceOptions }
  | { type: 'lateral-movement'; options: LateralMovementOptions }
  | { type: 'new-device'; options: NewDeviceOptions }
  | { type: 'posture' }
  | { type: 'token-replay'; options: TokenReplayOptions };

/** Default: one alert per (detector, key) per 15 minutes. */
export const DEFAULT_ALERT_DEDUPE_MS = 15 * 60_000;
/** Bound on remembered (detector, key) pairs; the oldest is forgotten first. */
const MAX_DEDUPE_KEYS = 50_000;

export interface Detection {
  event: AuditEvent;
  alerts: AlertEvent[];
}

/** Runs every detector on an event and collects flags and (deduplicated) alerts. */
export class DetectionPipeline {
  readonly #detectors: readonly Detector[];
  readonly #dedupeMs: number;
  readonly #lastAlert = new Map<string, number>();
  #flags: RiskFlag[] = [];
  #alerts: AlertEvent[] = [];
  #current: { detector: string; time: number } = { detector: '', time: 0 };
  readonly #report: DetectorReport = {
    flag: (risk) => {
      if (!this.#flags.includes(risk)) this.#flags.push(risk);
    },
    alert: (alert) => {
      const { detector, time } = this.#current;
      const key = `${detector}\u0000${alert.key}`;
      const last = this.#lastAlert.get(key);
      if (last !== undefined && time - last < this.#dedupeMs) return;
      this.#lastAlert.delete(key);
      this.#lastAlert.set(key, time);
      if (this.#lastAlert.size > MAX_DEDUPE_KEYS) {
        const oldest = this.#lastAlert.keys().next().value;
        if (oldest !== undefined) this.#lastAlert.delete(oldest);
      }
      this.#alerts.push({ ...alert, kind: 'alert', time, detector });
    },
  };

  constructor(detectors: readonly Detector[], options: { dedupeMs?: number } = {}) {
    const names = new Set<string>();
    for (const detector of detectors) {
      if (names.has(detector.name)) throw new TypeError(`two detectors are named ${detector.name}`);
      names.add(detector.name);
    }
    this.#detectors = detectors;
    this.#dedupeMs = options.dedupeMs ?? DEFAULT_ALERT_DEDUPE_MS;
  }

  get size(): number {
    return this.#detectors.length;
  }

  process(event: AuditEvent): Detection {
    if (this.#detectors.length === 0 || event.kind === 'alert') return { event, alerts: [] };
    this.#flags = [];
    this.#alerts = [];
    for (const detector of this.#detectors) {
      this.#current = { detector: detector.name, time: event.time };
      detector.observe(event, this.#report);
    }
    const flags = this.#flags;
    const alerts = this.#alerts;
    if (flags.length === 0 || event.kind !== 'decision') return { event, alerts };
    const risk = [...(event.risk ?? [])];
    for (const flag of flags) if (!risk.includes(flag)) risk.push(flag);
    return { event: { ...event, risk }, alerts };
  }
}

import { batchIdPrefix, eventId, type PreparedEvent, prepareEvent } from './chain.ts';
import { DetectionPipeline, type Detector } from './detect.ts';
import type { AuditEvent } from './events.ts';
import type { Pace } from './pace.ts';
import { type QueuedEvents, queuedEntries, UNSENDABLE } from './queue.ts';

/** An enqueued event that could not be encoded (a caller bug), recorded as an alert instead. */
export interface InvalidEvent {
  kind: string;
  message: string;
}

/** A batch ready to link: encoded events (alerts included) and what detection found. */
export interface PreparedBatch {
  events: PreparedEvent[];
  /** Alerts raised, by detector name. */
  alerts: Record<string, number>;
  invalid: InvalidEvent[];
}

/**
 * Runs detectors over queued events and encodes each one, in the thread that appends
 * them: the writer's worker thread for a SQLite file, the event loop otherwise. Holds the
 * detectors' windows, so one preparer sees every event of a log once, in order.
 */
export class BatchPreparer {
  readonly #pipeline: DetectionPipeline;
  readonly #idPrefix: string;

  constructor(detectors: readonly Detector[], options: { dedupeMs: number | undefined; idPrefix: string }) {
    this.#pipeline = new DetectionPipeline(detectors, { dedupeMs: options.dedupeMs });
    this.#idPrefix = options.idPrefix;
  }

  /**
   * `batch` numbers the batch in the writer (its events' ids derive from it); `now` is
   * the log's clock when the batch was taken, the time of an event that cannot be encoded
   * and has no usable time of its own. `pace` is called between events (see pace.ts).
   */
  async prepare(queued: QueuedEvents, batch: number, now: number, pace?: Pace): Promise<PreparedBatch> {
    const entries = queuedEntries(queued);
    const prepared: PreparedBatch = { events: [], alerts: {}, invalid: [] };
    const idPrefix = batchIdPrefix(this.#idPrefix, batch);
    const add = (event: AuditEvent) => {
      prepared.events.push(prepareEvent(event, eventId(idPrefix, prepared.events.length)));
      if (event.kind === 'alert')
        prepared.alerts[event.detector] = (prepared.alerts[event.detector] ?? 0) + 1;
    };
    for (let index = 0; index < entries.length; index++) {
      const pausing = pace?.();
      if (pausing) await pausing;
      const entry = entries[index] as (typeof entries)[number];
      let original: AuditEvent | undefined;
      try {
        original = entry.event();
        const unsendable = (original as { [UNSENDABLE]?: unknown })[UNSENDABLE];
        if (unsendable !== undefined) throw new TypeError(String(unsendable));
        const { event, alerts } = this.#pipeline.process(original);
        add(event);
        for (const alert of alerts) add(alert);
      } catch (error) {
        // A caller bug must not leave a hole where a decision should be: the chain gets
        // an alert in the event's place, carrying what can safely be said about it.
        const message = (error as Error).message;
        const kind = String(original?.kind ?? 'decision').slice(0, 32);
        prepared.invalid.push({ kind, message });
        const requestId = entry.requestId;
        const time = original?.time;
        add({
          kind: 'alert',
          time: typeof time === 'number' && Number.isSafeInteger(time) && time >= 0 ? time : now,
          detector: 'audit-writer',
          key: 'unencodable-event',
          severity: 'medium',
          summary: `a ${kind} event could not be encoded: ${message.slice(0, 200)}`,
          risk: [],
          ...(typeof requestId === 'string' && requestId.length <= 512 ? { evidence: [requestId] } : {}),
        });
      }
    }
    return prepared;
  }
}

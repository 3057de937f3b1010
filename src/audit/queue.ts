import { type AuditEvent, type DecisionFacts, decisionEvent } from './events.ts';

/** In `order`: the event is the next row of the decision columns. */
const DECISION_ROW = -1;

/**
 * An enforcement point's decisions as columns, one array per field. Recording one is a
 * push per field: the strings and lists are the session's and the policy's own, shared
 * by every request, so a decision waiting for the writer holds no object of its own and
 * the young generation stays small (survivors are what a scavenge pays for).
 */
export interface DecisionColumns {
  time: number[];
  requestId: string[];
  route: (string | null)[];
  host: (string | undefined)[];
  method: string[];
  path: string[];
  sourceIp: string[];
  user: (string | null)[];
  device: (string | null)[];
  session: (string | null | undefined)[];
  verdict: DecisionFacts['decision'][];
  via: (string | undefined)[];
  latencyMs: (number | undefined)[];
  groups: (readonly string[] | undefined)[];
  amr: (readonly string[] | undefined)[];
  authTime: (number | undefined)[];
}

/**
 * Events waiting for the writer, in enqueue order, as plain arrays: the writer's thread
 * receives a batch in one structured clone, and it is turned into events there.
 */
export interface QueuedEvents {
  /** Per event: DECISION_ROW for the next decision row, else its index in `others`. */
  order: number[];
  others: AuditEvent[];
  decisions: DecisionColumns;
}

function emptyColumns(): DecisionColumns {
  return {
    time: [],
    requestId: [],
    route: [],
    host: [],
    method: [],
    path: [],
    sourceIp: [],
    user: [],
    device: [],
    session: [],
    verdict: [],
    via: [],
    latencyMs: [],
    groups: [],
    amr: [],
    authTime: [],
  };
}

function emptyQueue(): QueuedEvents {
  return { order: [], others: [], decisions: emptyColumns() };
}

function queueDecision(queue: QueuedEvents, facts: DecisionFacts): void {
  const columns = queue.decisions;
  queue.order.push(DECISION_ROW);
  columns.time.push(facts.time);
  columns.requestId.push(facts.requestId);
  columns.route.push(facts.route);
  columns.host.push(facts.host);
  columns.method.push(facts.method);
  columns.path.push(facts.path);
  columns.sourceIp.push(facts.sourceIp);
  columns.user.push(facts.user);
  columns.device.push(facts.device);
  columns.session.push(facts.session);
  columns.verdict.push(facts.decision);
  columns.via.push(facts.via);
  columns.latencyMs.push(facts.latencyMs);
  columns.groups.push(facts.groups);
  columns.amr.push(facts.amr);
  columns.authTime.push(facts.authTime);
}

function queueEvent(queue: QueuedEvents, event: AuditEvent): void {
  queue.order.push(queue.others.length);
  queue.others.push(event);
}

/**
 * The writer's queue: chunks of at most `chunkSize` events, so that taking a batch of
 * that size is one `shift()` however long the backlog behind it is.
 */
export class EventQueue {
  readonly #chunkSize: number;
  #chunks: QueuedEvents[] = [];
  #length = 0;

  constructor(chunkSize: number) {
    this.#chunkSize = chunkSize;
  }

  get length(): number {
    return this.#length;
  }

  pushDecision(facts: DecisionFacts): void {
    queueDecision(this.#tail(), facts);
    this.#length++;
  }

  push(event: AuditEvent): void {
    queueEvent(this.#tail(), event);
    this.#length++;
  }

  /** The oldest chunk (up to `chunkSize` events), or undefined when empty. */
  take(): QueuedEvents | undefined {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) this.#length -= chunk.order.length;
    return chunk;
  }

  #tail(): QueuedEvents {
    let tail = this.#chunks.at(-1);
    if (tail === undefined || tail.order.length >= this.#chunkSize) {
      tail = emptyQueue();
      this.#chunks.push(tail);
    }
    return tail;
  }
}

/** One queued event, built from the columns only when asked for. */
export interface QueuedEntry {
  /** The event; throws for a decision row that cannot be made into one (a caller's bug). */
  event(): AuditEvent;
  /** The request id it carries, if any, for saying which event was lost. */
  requestId: unknown;
}

/**
 * The queued events in enqueue order, each built on demand, so that one bad decision
 * row fails alone instead of taking its whole batch with it.
 */
export function queuedEntries(queue: QueuedEvents): QueuedEntry[] {
  const entries: QueuedEntry[] = new Array(queue.order.length);
  let row = 0;
  for (let index = 0; index < queue.order.length; index++) {
    const entry = queue.order[index] as number;
    if (entry === DECISION_ROW) {
      const at = row++;
      entries[index] = {
        event: () => decisionAt(queue.decisions, at),
        requestId: queue.decisions.requestId[at],
      };
    } else {
      const event = queue.others[entry] as AuditEvent;
      entries[index] = {
        event: () => event,
        requestId: (event as { requestId?: unknown } | undefined)?.requestId,
      };
    }
  }
  return entries;
}

function decisionAt(columns: DecisionColumns, row: number): AuditEvent {
  // decisionEvent leaves out the optional fields that are undefined, as enqueue would.
  return decisionEvent({
    requestId: columns.requestId[row] as string,
    time: columns.time[row] as number,
    route: columns.route[row] as string | null,
    host: columns.host[row],
    method: columns.method[row] as string,
    path: columns.path[row] as string,
    sourceIp: columns.sourceIp[row] as string,
    user: columns.user[row] as string | null,
    device: columns.device[row] as string | null,
    session: columns.session[row],
    decision: columns.verdict[row] as DecisionFacts['decision'],
    via: columns.via[row],
    latencyMs: columns.latencyMs[row],
    groups: columns.groups[row],
    amr: columns.amr[row],
    authTime: columns.authTime[row],
  });
}

/** Marks, in a queue sent to the writer's thread, an event that could not be sent as it was. */
export const UNSENDABLE = '__vigilUnsendable';

/**
 * The queue as events that a structured clone accepts: an event holding a function or
 * another value a clone refuses is replaced by a marker naming the problem, which the
 * writer records as an unencodable event (an alert in its place), as it would on its own
 * thread. For the rare queue whose clone failed; the common one is sent as it is.
 */
export function sendableQueue(queue: QueuedEvents): QueuedEvents {
  const sendable = emptyQueue();
  for (const entry of queuedEntries(queue)) {
    let event: AuditEvent | undefined;
    try {
      event = entry.event();
      queueEvent(sendable, structuredClone(event));
    } catch (error) {
      const { kind, time } = (event ?? {}) as { kind?: unknown; time?: unknown };
      queueEvent(sendable, {
        kind: typeof kind === 'string' ? kind : 'decision',
        time: typeof time === 'number' ? time : Number.NaN,
        ...(typeof entry.requestId === 'string' ? { requestId: entry.requestId } : {}),
        [UNSENDABLE]: (error as Error).message,
      } as unknown as AuditEvent);
    }
  }
  return sendable;
}

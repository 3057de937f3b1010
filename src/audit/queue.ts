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

export function emptyQueue(): QueuedEvents {
  return { order: [], others: [], decisions: emptyColumns() };
}

export function queueDecision(queue: QueuedEvents, facts: DecisionFacts): void {
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

export function queueEvent(queue: QueuedEvents, event: AuditEvent): void {
  queue.order.push(queue.others.length);
  queue.others.push(event);
}

/**
 * Takes the first `count` events off `queue` (all of them when it holds no more) and
 * returns them as a queue of their own.
 */
export function takeEvents(queue: QueuedEvents, count: number): QueuedEvents {
  if (queue.order.length <= count) {
    const taken = { order: queue.order, others: queue.others, decisions: queue.decisions };
    queue.order = [];
    queue.others = [];
    queue.decisions = emptyColumns();
    return taken;
  }
  const order = queue.order.slice(0, count);
  let rows = 0;
  let others = 0;
  for (const entry of order) {
    if (entry === DECISION_ROW) rows++;
    else others++;
  }
  const taken: QueuedEvents = { order, others: queue.others.slice(0, others), decisions: emptyColumns() };
  const rest = emptyColumns();
  for (const key of Object.keys(queue.decisions) as (keyof DecisionColumns)[]) {
    const column = queue.decisions[key] as unknown[];
    (taken.decisions[key] as unknown[]) = column.slice(0, rows);
    (rest[key] as unknown[]) = column.slice(rows);
  }
  queue.order = queue.order.slice(count).map((entry) => (entry === DECISION_ROW ? entry : entry - others));
  queue.others = queue.others.slice(others);
  queue.decisions = rest;
  return taken;
}

/** The queued events as event objects, in enqueue order. */
export function queuedEvents(queue: QueuedEvents): AuditEvent[] {
  const events: AuditEvent[] = new Array(queue.order.length);
  const columns = queue.decisions;
  let row = 0;
  for (let index = 0; index < queue.order.length; index++) {
    const entry = queue.order[index] as number;
    if (entry !== DECISION_ROW) {
      events[index] = queue.others[entry] as AuditEvent;
      continue;
    }
    const facts: DecisionFacts = {
      requestId: columns.requestId[row] as string,
      time: columns.time[row] as number,
      route: columns.route[row] as string | null,
      method: columns.method[row] as string,
      path: columns.path[row] as string,
      sourceIp: columns.sourceIp[row] as string,
      user: columns.user[row] as string | null,
      device: columns.device[row] as string | null,
      session: columns.session[row],
      decision: columns.verdict[row] as DecisionFacts['decision'],
    };
    const host = columns.host[row];
    if (host !== undefined) facts.host = host;
    const via = columns.via[row];
    if (via !== undefined) facts.via = via;
    const latencyMs = columns.latencyMs[row];
    if (latencyMs !== undefined) facts.latencyMs = latencyMs;
    const groups = columns.groups[row];
    if (groups !== undefined) facts.groups = groups;
    const amr = columns.amr[row];
    if (amr !== undefined) facts.amr = amr;
    const authTime = columns.authTime[row];
    if (authTime !== undefined) facts.authTime = authTime;
    events[index] = decisionEvent(facts);
    row++;
  }
  return events;
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
  for (const event of queuedEvents(queue)) {
    try {
      queueEvent(sendable, structuredClone(event));
    } catch (error) {
      const { kind, time, requestId } = event as { kind?: unknown; time?: unknown; requestId?: unknown };
      queueEvent(sendable, {
        kind: typeof kind === 'string' ? kind : 'unknown',
        time: typeof time === 'number' ? time : Number.NaN,
        ...(typeof requestId === 'string' ? { requestId } : {}),
        [UNSENDABLE]: (error as Error).message,
      } as unknown as AuditEvent);
    }
  }
  return sendable;
}

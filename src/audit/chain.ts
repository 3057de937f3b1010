import { hash as digest, randomBytes } from 'node:crypto';
import type { AuditEventsTable } from '../store/index.ts';
import { canonicalRecord } from './canonical.ts';
import type { AuditEvent, AuditRecord } from './events.ts';

/** `prev_hash` of the first event: no predecessor. */
export const GENESIS_HASH = '0'.repeat(64);

/** An event encoded once, before its place in the chain is known. */
export interface PreparedEvent {
  id: string;
  time: number;
  kind: AuditEvent['kind'];
  /** Canonical JSON of the event without `kind` and `time` (those are columns). */
  dataJson: string;
}

const COLUMNS = ['kind', 'time'] as const;

export function prepareEvent(event: AuditEvent, id: string): PreparedEvent {
  return {
    id,
    time: event.time,
    kind: event.kind,
    dataJson: canonicalRecord(event as unknown as Record<string, unknown>, COLUMNS),
  };
}

/**
 * The hashed text of one event: the canonical JSON of every stored column, keys in
 * sorted order. `dataJson` is already canonical, so the whole string is canonical JSON
 * of `{data, id, kind, prev_hash, seq, time}` and a verifier in any language can
 * rebuild it from the row.
 */
export function chainEnvelope(
  seq: number,
  id: string,
  time: number,
  kind: string,
  dataJson: string,
  prevHash: string,
): string {
  return `{"data":${dataJson},"id":${JSON.stringify(id)},"kind":${JSON.stringify(kind)},"prev_hash":${JSON.stringify(prevHash)},"seq":${seq},"time":${time}}`;
}

export function chainHash(
  seq: number,
  id: string,
  time: number,
  kind: string,
  dataJson: string,
  prevHash: string,
): string {
  return digest('sha256', chainEnvelope(seq, id, time, kind, dataJson, prevHash), 'hex');
}

/** Links prepared events after `(seq, hash)`, returning the rows to insert. */
export function linkEvents(
  events: readonly PreparedEvent[],
  after: { seq: number; hash: string },
): AuditEventsTable[] {
  const rows: AuditEventsTable[] = new Array(events.length);
  let seq = after.seq;
  let prev = after.hash;
  for (let index = 0; index < events.length; index++) {
    const event = events[index] as PreparedEvent;
    seq += 1;
    const hash = chainHash(seq, event.id, event.time, event.kind, event.dataJson, prev);
    rows[index] = {
      seq,
      id: event.id,
      time: event.time,
      kind: event.kind,
      data_json: event.dataJson,
      prev_hash: prev,
      hash,
    };
    prev = hash;
  }
  return rows;
}

/** A stored row back as an event; the columns win over anything in the JSON. */
export function recordFromRow(
  row: Pick<AuditEventsTable, 'seq' | 'id' | 'time' | 'kind' | 'data_json'>,
): AuditRecord {
  const data = JSON.parse(row.data_json) as Record<string, unknown>;
  return { ...data, kind: row.kind, time: Number(row.time), seq: Number(row.seq), id: row.id } as AuditRecord;
}

/**
 * The part of event ids fixed for one writer: 12 hex digits of its start time in
 * milliseconds and 8 random ones. Ids from one writer sort in append order, so inserts
 * into the unique index on `id` land at the end of the B-tree, and the random part keeps
 * two writers apart. Far cheaper than a random UUID per event.
 */
export function eventIdPrefix(now: number): string {
  return `${Math.max(0, Math.floor(now)).toString(16).padStart(12, '0').slice(-12)}-${randomBytes(4).toString('hex')}-`;
}

/**
 * The ids of one batch start with this: the writer's prefix and the batch number. The
 * ids of a batch depend on nothing else, so a batch prepared again after its writer
 * thread died (did it commit?) gets the same ids and is found in the chain.
 */
export function batchIdPrefix(writerPrefix: string, batch: number): string {
  return writerPrefix + batch.toString(36).padStart(7, '0');
}

/** The id of the `index`-th event of a batch (alerts included). */
export function eventId(batchPrefix: string, index: number): string {
  return batchPrefix + index.toString(36).padStart(4, '0');
}

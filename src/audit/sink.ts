import type { AuditRecord } from './events.ts';

/** One durable event as sinks receive it: the record and its chain hash. */
export interface SinkEntry {
  record: AuditRecord;
  hash: string;
}

/**
 * Where durable events are streamed (syslog, a webhook, a SIEM). The writer calls
 * `write` after the batch's transaction committed, in batch order, one call at a time
 * per sink; a failing sink is logged and counted and never holds up the log.
 */
export interface AuditSink {
  readonly name: string;
  write(entries: readonly SinkEntry[]): Promise<void>;
  close?(): Promise<void>;
}

import { Counter, Gauge, type Registry } from '../telemetry/index.ts';
import type { AuditLog } from './writer.ts';

/**
 * Exposes the log's counters on a registry made by `createMetricsRegistry`. Values are
 * read from `log.stats` at scrape time, so the hot path never touches prom-client.
 */
export function registerAuditMetrics(registry: Registry, log: Pick<AuditLog, 'stats'>): void {
  const registers = [registry];
  new Gauge({
    name: 'vigil_audit_queue_depth',
    help: 'Audit events waiting to be written',
    registers,
    collect() {
      this.set(log.stats.queued);
    },
  });
  new Gauge({
    name: 'vigil_audit_last_seq',
    help: 'Sequence number of the last audit event this process made durable',
    registers,
    collect() {
      this.set(log.stats.lastSeq);
    },
  });
  const counter = (name: string, help: string, read: () => number) => {
    let reported = 0;
    new Counter({
      name,
      help,
      registers,
      collect() {
        const now = read();
        if (now > reported) this.inc(now - reported);
        reported = now;
      },
    });
  };
  counter(
    'vigil_audit_events_appended_total',
    'Audit events durably appended (alerts included)',
    () => log.stats.appended,
  );
  counter(
    'vigil_audit_events_dropped_total',
    'Audit events refused or shed because the queue was full or the log closed',
    () => log.stats.dropped,
  );
  counter(
    'vigil_audit_write_errors_total',
    'Audit batches whose transaction failed (retried)',
    () => log.stats.writeErrors,
  );
  counter(
    'vigil_audit_sink_errors_total',
    'Deliveries to an audit sink that failed',
    () => log.stats.sinkErrors,
  );
  const reported = new Map<string, number>();
  new Counter({
    name: 'vigil_audit_alerts_total',
    help: 'Alerts raised by audit detectors',
    labelNames: ['detector'],
    registers,
    collect() {
      for (const [detector, count] of Object.entries(log.stats.alerts)) {
        const before = reported.get(detector) ?? 0;
        if (count > before) this.inc({ detector }, count - before);
        reported.set(detector, count);
      }
    },
  });
}

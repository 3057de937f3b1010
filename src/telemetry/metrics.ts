import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * One registry per server process (not prom-client's global one), so that tests can
 * run several servers in one process without metric name clashes.
 */
export function createMetricsRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'vigil' });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'vigil_' });
  return registry;
}

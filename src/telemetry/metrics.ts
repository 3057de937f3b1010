import { collectDefaultMetrics, type Histogram, Registry } from 'prom-client';

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

type HistogramValues = Awaited<ReturnType<Histogram['get']>>;

/**
 * A histogram for a request path: observing is a bucket search and three additions.
 * prom-client's `observe` hashes a label object and keys its buckets by number-as-string
 * on every call; this one keeps plain numbers and renders the same exposition
 * (`_bucket{le}`, `_sum`, `_count`) when scraped. Without labels.
 */
export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last one is above every bound. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(options: {
    name: string;
    help: string;
    buckets: readonly number[];
    registers: readonly Registry[];
  }) {
    const bounds = [...options.buckets].sort((a, b) => a - b);
    if (bounds.some((bound) => !Number.isFinite(bound)) || new Set(bounds).size !== bounds.length) {
      throw new TypeError(`${options.name}: buckets must be distinct finite numbers`);
    }
    this.name = options.name;
    this.help = options.help;
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
    // The registry reads name, help, type and get(): prom-client's own metrics are one
    // kind of what it renders, and its type says only those.
    for (const registry of options.registers) registry.registerMetric(this as unknown as Histogram);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++;
    this.#counts[bucket] = (this.#counts[bucket] as number) + 1;
    this.#sum += value;
    this.#count++;
  }

  async get(): Promise<HistogramValues> {
    const bucket = `${this.name}_bucket`;
    const values: HistogramValues['values'] = [];
    let cumulative = 0;
    this.#bounds.forEach((bound, index) => {
      cumulative += this.#counts[index] as number;
      values.push({ metricName: bucket, labels: { le: bound }, value: cumulative });
    });
    values.push(
      { metricName: bucket, labels: { le: '+Inf' }, value: this.#count },
      { metricName: `${this.name}_sum`, labels: {}, value: this.#sum },
      { metricName: `${this.name}_count`, labels: {}, value: this.#count },
    );
    return {
      name: this.name,
      help: this.help,
      // prom-client's MetricType is a declared enum it does not export at runtime; the
      // registry writes `type` as it is.
      type: this.type as never,
      aggregator: this.aggregator,
      collect: () => {},
      values,
    };
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}

// The request path's histogram renders what prom-client's own would for the same
// observations: dashboards and alerts cannot tell them apart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, HotHistogram, Registry } from '../../src/telemetry/index.ts';

const BUCKETS = [0.000_005, 0.000_01, 0.000_25, 0.001, 0.025];
const OBSERVED = [0, 0.000_005, 0.000_007, 0.000_25, 0.000_3, 0.02, 0.025, 0.1, 3, 0.000_001];

function registries() {
  const reference = new Registry();
  const hot = new Registry();
  for (const registry of [reference, hot]) registry.setDefaultLabels({ service: 'vigil' });
  const options = { name: 'vigil_test_seconds', help: 'Test latency', buckets: BUCKETS };
  return {
    reference,
    hot,
    referenceHistogram: new Histogram({ ...options, registers: [reference] }),
    hotHistogram: new HotHistogram({ ...options, registers: [hot] }),
  };
}

describe('HotHistogram', () => {
  it('renders the same exposition as a prom-client Histogram', async () => {
    const { reference, hot, referenceHistogram, hotHistogram } = registries();
    for (const value of OBSERVED) {
      referenceHistogram.observe(value);
      hotHistogram.observe(value);
    }
    const text = await hot.metrics();
    assert.equal(text, await reference.metrics());
    assert.match(text, /^vigil_test_seconds_bucket\{le="0\.001",service="vigil"\} 6$/m);
    assert.match(text, /^vigil_test_seconds_count\{service="vigil"\} 10$/m);
    // As JSON (the cluster aggregator's input), the same series and values.
    const series = async (registry: Registry) =>
      (await registry.getMetricsAsJSON()).map(({ name, type, aggregator, values }) => ({
        name,
        type,
        aggregator,
        values: values.map(({ labels, value, ...rest }) => ({
          metricName: (rest as { metricName?: string }).metricName,
          labels,
          value,
        })),
      }));
    assert.deepEqual(await series(hot), await series(reference));
  });

  it('ignores values that are not finite numbers and starts over on reset', async () => {
    const { hot, hotHistogram } = registries();
    hotHistogram.observe(Number.NaN);
    hotHistogram.observe(Number.POSITIVE_INFINITY);
    assert.match(await hot.metrics(), /^vigil_test_seconds_count\{service="vigil"\} 0$/m);
    hotHistogram.observe(0.5);
    hot.resetMetrics();
    assert.match(await hot.metrics(), /^vigil_test_seconds_count\{service="vigil"\} 0$/m);
  });

  it('refuses buckets that are not distinct finite numbers', () => {
    for (const buckets of [
      [0.1, 0.1],
      [0.1, Number.NaN],
    ]) {
      assert.throws(
        () => new HotHistogram({ name: 'vigil_bad_seconds', help: 'x', buckets, registers: [] }),
        /buckets must be distinct finite numbers/,
      );
    }
  });
});

import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import type { PolicyInput } from '../../src/policy/index.ts';
import { alice, NOW, policySet, request } from './helpers.ts';

test('deciding without explain allocates nothing per decision', async () => {
  const set = policySet([
    {
      name: 'no-admin',
      deny: { and: [{ groups: { any: ['contractors'] } }, { path: { prefix: '/admin' } }] },
    },
    { name: 'blocked', deny: { source_ip: ['203.0.113.0/24', '2001:db8:bad::/48'] } },
    { name: 'sre', allow: { groups: { any: ['sre'] } } },
    {
      name: 'staff',
      allow: {
        and: [
          { email_domain: ['company.com'] },
          { device: 'managed' },
          { posture: { disk_encrypted: true, max_age: '1h' } },
          { time: { zone: 'Europe/Berlin', weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'] } },
        ],
      },
    },
  ]);
  const device = { id: 'd', state: 'managed' as const, posture: { diskEncrypted: true, reportedAt: NOW } };
  const inputs: PolicyInput[] = [
    request({ user: alice, sourceIp: '10.0.0.1' }),
    request({ user: { ...alice, groups: ['engineering'] }, device, sourceIp: '10.0.0.2' }),
    request({ user: { ...alice, groups: ['contractors'] }, path: '/admin/x', sourceIp: '10.0.0.3' }),
    request({ user: { ...alice, groups: [] }, sourceIp: '203.0.113.9' }),
    request({ sourceIp: '2001:db8:1::1' }),
    request({ user: { ...alice, email: 'x@agency.example', groups: [] }, device, sourceIp: '10.0.0.4' }),
  ];
  let sink = 0;
  const run = (count: number) => {
    for (let i = 0; i < count; i++)
      sink ^= set.decide(inputs[i % inputs.length] as PolicyInput).reasons.length;
  };
  run(200_000);
  let collections = 0;
  const observer = new PerformanceObserver((list) => {
    collections += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  const before = getHeapStatistics().used_heap_size;
  run(1_000_000);
  const grown = getHeapStatistics().used_heap_size - before;
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  // 1M decisions allocating even 16 bytes each would be 16 MB and several collections.
  assert.equal(collections, 0, `garbage collections during 1M decisions (sink ${sink})`);
  assert.ok(grown < 1_000_000, `heap grew by ${grown} bytes over 1M decisions`);
});

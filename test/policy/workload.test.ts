import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowIf } from './helpers.ts';

const workload = (spiffeId: string) => ({ workload: { spiffeId } });

test('spiffe_id equals matches the exact SPIFFE ID', () => {
  const decide = allowIf({ spiffe_id: { equals: 'spiffe://corp.example/ns/production/sa/order-service' } });
  assert.equal(decide(workload('spiffe://corp.example/ns/production/sa/order-service')).effect, 'allow');
  assert.deepEqual(decide(workload('spiffe://corp.example/ns/production/sa/order-service2')).reasons, [
    'workload-denied',
  ]);
  assert.deepEqual(decide({}).reasons, ['workload-denied']);
});

test('a spiffe_id glob star matches one path segment', () => {
  const decide = allowIf({ spiffe_id: { glob: 'spiffe://corp.example/ns/*/sa/order-service' } });
  assert.equal(decide(workload('spiffe://corp.example/ns/staging/sa/order-service')).effect, 'allow');
  assert.equal(decide(workload('spiffe://corp.example/ns/a/b/sa/order-service')).effect, 'deny');
  assert.equal(decide(workload('spiffe://evil.example/ns/staging/sa/order-service')).effect, 'deny');
  const anyPath = allowIf({ spiffe_id: { glob: ['spiffe://corp.example/**'] } });
  assert.equal(anyPath(workload('spiffe://corp.example/ns/a/sa/b')).effect, 'allow');
  assert.equal(anyPath(workload('spiffe://corp.example.evil/x')).effect, 'deny');
});

test('client_certificate requires a presented certificate; absent means missing', () => {
  const decide = allowIf({ client_certificate: true });
  assert.equal(decide({ clientCertificate: true }).effect, 'allow');
  assert.deepEqual(decide({ clientCertificate: false }).reasons, ['client-cert-missing']);
  assert.deepEqual(decide({}).reasons, ['client-cert-missing']);
});

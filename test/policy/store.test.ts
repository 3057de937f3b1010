import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ManualClock } from '../../src/internal/clock.ts';
import { PolicyStore } from '../../src/policy/index.ts';
import { request } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'vigil-policy-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const good = (effect: 'allow' | 'deny') =>
  `policies:\n  - name: p\n    rules:\n      - name: r\n        ${effect}: true\nroutes:\n  - host: app.corp.example\n    policy: p\n`;

test('before the first load every request is denied with no-route', () => {
  const store = new PolicyStore({ clock: new ManualClock() });
  assert.deepEqual(store.decide(request()).reasons, ['no-route']);
});

test('a reload swaps in the new policies', async () => {
  const file = join(dir, 'swap.yaml');
  const store = new PolicyStore();
  writeFileSync(file, good('allow'));
  assert.equal(await store.reload([file]), null);
  assert.equal(store.decide(request()).effect, 'allow');
  writeFileSync(file, good('deny'));
  assert.equal(await store.reload([file]), null);
  assert.equal(store.decide(request()).effect, 'deny');
});

test('a policy that fails to compile never replaces the one serving', async () => {
  const file = join(dir, 'keep.yaml');
  const store = new PolicyStore();
  writeFileSync(file, good('allow'));
  await store.reload([file]);
  const serving = store.current;
  writeFileSync(file, `${good('allow')}      - name: extra\n`);
  writeFileSync(file, good('allow').replace('allow: true', 'allow: { groups: { any: sre } }'));
  const error = await store.reload([file]);
  assert.equal(error?.code, 'ERR_POLICY_INVALID');
  assert.match(
    error?.message ?? '',
    /keep\.yaml:5 policies\[0\]\.rules\[0\]\.allow\.groups\.any: expected array of strings/,
  );
  assert.equal(store.current, serving);
  assert.equal(store.decide(request()).effect, 'allow');
  const missing = await store.reload([join(dir, 'missing.yaml')]);
  assert.match(missing?.message ?? '', /missing\.yaml: cannot read policy file/);
  assert.equal(store.current, serving);
});

test('a reload can bring a new route table from the proxy config', async () => {
  const file = join(dir, 'routes.yaml');
  writeFileSync(file, good('allow'));
  const store = new PolicyStore();
  assert.equal(await store.reload([file], [{ host: 'other.example', policy: 'p' }]), null);
  assert.deepEqual(store.decide(request()).reasons, ['no-route']);
  assert.equal(store.decide(request({ host: 'other.example' })).effect, 'allow');
  const error = await store.reload(
    [file],
    [{ host: 'other.example', policy: 'nope', source: 'vigil.yaml:9' }],
  );
  assert.match(error?.message ?? '', /vigil\.yaml:9\.policy: no policy named "nope"/);
  assert.equal(store.decide(request({ host: 'other.example' })).effect, 'allow');
});

// The assertion cache: a token is signed once per identity and route and served while
// it has half its life left, but never for other claims than it carries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { ManualClock } from '../../src/internal/clock.ts';
import { type AssertionClaims, AssertionSigner } from '../../src/proxy/index.ts';

async function signer(clock = new ManualClock()) {
  const made = new AssertionSigner({ issuer: 'https://vigil.test', clock });
  await made.rotate();
  return made;
}

const groups = Object.freeze(['engineering']);
const claims: AssertionClaims = { sub: 'dev:alice', email: 'alice@example.com', groups, device: 'laptop-1' };

describe('AssertionSigner cache', () => {
  it('serves the signed token again for the same session, route and claims', async () => {
    const assertions = await signer();
    const first = await assertions.assertionFor('session:1', 'wiki', claims);
    assert.equal(assertions.assertionFor('session:1', 'wiki', { ...claims }), first);
    assert.notEqual(await assertions.assertionFor('session:1', 'grafana', claims), first, 'another route');
    assert.notEqual(await assertions.assertionFor('session:2', 'wiki', claims), first, 'another session');
  });

  it('signs anew when the session comes back with other groups, email or device', async () => {
    const assertions = await signer();
    const first = await assertions.assertionFor('session:1', 'wiki', claims);
    const regrouped = await assertions.assertionFor('session:1', 'wiki', {
      ...claims,
      groups: Object.freeze(['engineering', 'sre']),
    });
    assert.notEqual(regrouped, first);
    assert.deepEqual(decodeJwt(regrouped).groups, ['engineering', 'sre']);
    const moved = await assertions.assertionFor('session:1', 'wiki', {
      ...claims,
      groups,
      device: undefined,
    });
    assert.equal(decodeJwt(moved).device, undefined);
    const renamed = await assertions.assertionFor('session:1', 'wiki', {
      ...claims,
      groups,
      email: 'a@example.com',
    });
    assert.equal(decodeJwt(renamed).email, 'a@example.com');
  });

  it('signs anew past half the lifetime, after forget, and after a rotation', async () => {
    const clock = new ManualClock();
    const assertions = await signer(clock);
    const first = await assertions.assertionFor('session:1', 'wiki', claims);
    clock.advance(29_000);
    assert.equal(assertions.assertionFor('session:1', 'wiki', claims), first);
    clock.advance(1_000);
    const second = await assertions.assertionFor('session:1', 'wiki', claims);
    assert.notEqual(second, first);
    assertions.forget('session:1');
    const third = await assertions.assertionFor('session:1', 'wiki', claims);
    assert.notEqual(third, second);
    await assertions.rotate();
    assert.notEqual(await assertions.assertionFor('session:1', 'wiki', claims), third);
  });
});

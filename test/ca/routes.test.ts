import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { caApiRoutes } from '../../src/ca/index.ts';
import type { ApiRequest, ApiRoute } from '../../src/internal/http.ts';
import { makeCa, makeCsr, type TestCa } from './helpers.ts';

function request(overrides: Partial<ApiRequest> = {}): ApiRequest {
  return {
    method: 'GET',
    path: '/',
    params: {},
    query: new URLSearchParams(),
    headers: {},
    json: async () => ({}),
    principal: 'admin',
    ...overrides,
  };
}

describe('CA admin API', () => {
  let t: TestCa;
  let routes: Map<string, ApiRoute>;
  before(async () => {
    t = await makeCa();
    routes = new Map(caApiRoutes(t.ca).map((route) => [`${route.method} ${route.path}`, route]));
  });
  after(async () => {
    t.ca.close();
    await t.store.close();
  });
  const call = async (key: string, req: ApiRequest) => {
    const route = routes.get(key);
    assert.ok(route, key);
    return route.handler(req);
  };

  it('GET /api/v1/ca/bundle returns the PEM bundle, or JWKS with ?format=jwks', async () => {
    const pem = await call('GET /api/v1/ca/bundle', request());
    assert.equal(pem.status, 200);
    assert.equal((pem.body as { pem: string }).pem, t.ca.bundlePem());
    const jwks = await call('GET /api/v1/ca/bundle', request({ query: new URLSearchParams('format=jwks') }));
    assert.equal((jwks.body as { keys: unknown[] }).keys.length, 2);
    await assert.rejects(
      Promise.resolve(call('GET /api/v1/ca/bundle', request({ query: new URLSearchParams('format=x') }))),
      {
        code: 'ERR_HTTP_BAD_REQUEST',
      },
    );
  });

  it('POST /api/v1/ca/revoke revokes and GET /api/v1/ca/crl lists it', async () => {
    const issued = await t.ca.signDeviceCertificate({ csr: await makeCsr(), deviceId: 'd-api' });
    const revoked = await call(
      'POST /api/v1/ca/revoke',
      request({ method: 'POST', json: async () => ({ serial: issued.serial, reason: 'key-compromise' }) }),
    );
    assert.equal(revoked.status, 200);
    assert.equal((revoked.body as { serial: string }).serial, issued.serial);
    const crl = await call('GET /api/v1/ca/crl', request());
    assert.equal((crl.body as { entries: number }).entries, 1);
    assert.match((crl.body as { pem: string }).pem, /BEGIN X509 CRL/);
  });

  it('POST /api/v1/ca/revoke validates its body', async () => {
    for (const body of [
      null,
      [],
      { serial: 7 },
      { serial: 'ab', extra: true },
      { serial: 'ab', reason: 3 },
    ]) {
      await assert.rejects(
        Promise.resolve(call('POST /api/v1/ca/revoke', request({ method: 'POST', json: async () => body }))),
        { code: 'ERR_HTTP_BAD_REQUEST' },
      );
    }
    await assert.rejects(
      Promise.resolve(
        call('POST /api/v1/ca/revoke', request({ method: 'POST', json: async () => ({ serial: '7f7f' }) })),
      ),
      { code: 'ERR_CA_CERT_NOT_FOUND', status: 404 },
    );
  });
});

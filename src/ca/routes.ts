import { type ApiRoute, badRequest } from '../internal/http.ts';
import type { CertificateAuthority } from './authority.ts';

/** Admin API of the CA; the server mounts these behind admin authentication. */
export function caApiRoutes(ca: CertificateAuthority): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/ca/bundle',
      summary: 'Trust bundle: PEM of the root and live intermediates, or JWKS with ?format=jwks',
      async handler(request) {
        const format = request.query.get('format') ?? 'pem';
        if (format === 'jwks') return { status: 200, body: await ca.bundleJwks() };
        if (format !== 'pem') throw badRequest('format must be pem or jwks');
        return { status: 200, body: { trust_domain: ca.trustDomain, pem: ca.bundlePem() } };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/ca/crl',
      summary: 'Certificate revocation list of the current intermediate (PEM and base64 DER)',
      async handler(request) {
        const issuer = request.query.get('issuer') ?? undefined;
        const crl = await ca.crl(issuer);
        return {
          status: 200,
          body: {
            pem: crl.pem,
            der_base64: Buffer.from(crl.der).toString('base64'),
            this_update: crl.thisUpdate.toISOString(),
            next_update: crl.nextUpdate.toISOString(),
            entries: crl.entries,
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/ca/revoke',
      summary: 'Revoke a certificate by serial: {"serial": "...", "reason": "key-compromise"}',
      async handler(request) {
        const body = await request.json();
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw badRequest('body must be a JSON object');
        const { serial, reason, ...rest } = body as Record<string, unknown>;
        if (Object.keys(rest).length > 0) throw badRequest(`unknown field ${Object.keys(rest)[0]}`);
        if (typeof serial !== 'string' || serial.length === 0 || serial.length > 128)
          throw badRequest('serial must be a string');
        if (reason !== undefined && typeof reason !== 'string') throw badRequest('reason must be a string');
        const revoked = await ca.revoke(serial, reason ?? 'unspecified');
        return {
          status: 200,
          body: {
            serial: revoked.serial,
            revoked_at: revoked.revokedAt.toISOString(),
            reason: revoked.reason,
          },
        };
      },
    },
  ];
}

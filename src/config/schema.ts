import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseDuration } from '../internal/duration.ts';
import { describeSecretProblem, readSecretFile } from '../internal/secrets.ts';

/**
 * A secret read from a `*_file` path. It prints as "[redacted]" in logs, JSON and
 * inspection so that dumping a config never leaks it.
 */
export class Secret {
  readonly #value: string;
  readonly path: string;
  constructor(value: string, path: string) {
    this.#value = value;
    this.path = path;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return '[redacted]';
  }
  toString(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Secret(${this.path})`;
  }
}

export interface ListenAddress {
  host: string;
  port: number;
}

const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([a-zA-Z0-9.-]*)):(\d{1,5})$/;

/** "127.0.0.1:8080", ":8080", "[::1]:8080" → { host, port }. */
export function parseListen(text: string): ListenAddress | undefined {
  const match = LISTEN.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65_535) return undefined;
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a duration like 30s, 15m, 4h or 7d (got "${text}")`,
        });
        return z.NEVER;
      }
      return ms;
    });

const listen = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const address = parseListen(text);
      if (!address) {
        ctx.addIssue({ code: 'custom', message: `must be host:port, :port or [ipv6]:port (got "${text}")` });
        return z.NEVER;
      }
      return address;
    });

function isCidr(text: string): boolean {
  const [address, bits, extra] = text.split('/');
  if (address === undefined || bits === undefined || extra !== undefined || !/^\d{1,3}$/.test(bits))
    return false;
  const family = isIP(address);
  return family !== 0 && Number(bits) <= (family === 6 ? 128 : 32);
}

const count = (fallback: number) => z.number().int().positive().default(fallback);

const httpUrl = z.string().refine(
  (text) => {
    try {
      const url = new URL(text);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      return false;
    }
  },
  { message: 'must be an http(s) URL' },
);

/** Builds the schema; `baseDir` resolves relative paths (the config file's folder). */
export function configSchema(baseDir: string) {
  const path = z
    .string()
    .min(1)
    .transform((text) => (isAbsolute(text) ? text : resolve(baseDir, text)));

  const secretFile = z
    .string()
    .min(1)
    .transform((text, ctx) => {
      const full = isAbsolute(text) ? text : resolve(baseDir, text);
      const read = readSecretFile(full);
      if ('value' in read) return new Secret(read.value, full);
      const why = describeSecretProblem(full, read);
      ctx.addIssue({ code: 'custom', message: why });
      return z.NEVER;
    });

  const tls = z.strictObject({
    cert_file: path.describe('PEM certificate chain of the proxy listener'),
    key_file: path.describe('PEM private key of the proxy listener'),
    client_ca_file: path
      .optional()
      .describe(
        'also accept client certificates signed by this CA (the internal CA is trusted for device certificates when ca is set)',
      ),
  });

  const route = z.strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes (max 63)')
      .describe('unique name, used in logs, metrics and the audit log'),
    from: httpUrl.describe('public URL the route answers on: scheme, host and optional path prefix'),
    to: z
      .union([httpUrl, z.array(httpUrl).min(1)])
      .transform((value) => (Array.isArray(value) ? value : [value]))
      .describe('upstream URL, or a list used round robin'),
    policy: z
      .string()
      .min(1)
      .describe('name of the policy (from policy_files) that decides who reaches this route'),
    tls_ca_file: path
      .optional()
      .describe("PEM CA bundle that signs the upstreams' certificates (private CA)"),
    health_check: z
      .strictObject({
        path: z
          .string()
          .startsWith('/')
          .describe('path probed on each upstream; 5xx or no answer takes it out'),
        interval: duration('5s').describe('time between probes'),
      })
      .optional()
      .describe(
        'active health checks; without them an upstream that refuses connections is skipped for 10 s',
      ),
    preserve_host: z
      .boolean()
      .default(false)
      .describe(
        "send the client's Host header to the upstream instead of the upstream URL's host (apps that build links from it)",
      ),
    timeout: duration('30s')
      .refine((ms) => ms > 0, 'must be longer than 0s')
      .describe('how long an upstream may take to start its answer (504 beyond)'),
    idle_timeout: duration('60s').describe(
      "longest pause within an upstream's answer once started (the response is cut beyond); server-sent events and long polls need more; 0s: none",
    ),
    mode: z
      .enum(['enforce', 'audit'])
      .default('enforce')
      .describe('audit logs the would-be decision and lets the request through (for rollouts)'),
    reauth_after: z
      .string()
      .optional()
      .transform((text, ctx) => {
        if (text === undefined) return undefined;
        const ms = parseDuration(text);
        if (ms === undefined || ms <= 0) {
          ctx.addIssue({ code: 'custom', message: `must be a duration like 30m or 4h (got "${text}")` });
          return z.NEVER;
        }
        return ms;
      })
      .describe('sign-in frequency: a session whose login is older than this logs in again (e.g. 4h)'),
    idp: z
      .string()
      .min(1)
      .optional()
      .describe(
        'identity provider (by name) this route logs users in with; a login page lists all otherwise',
      ),
  });

  const idpName = z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes (max 63)');

  const identityProvider = z.strictObject({
    name: idpName.describe('short name used in /.vigil/login?idp=NAME, user ids (NAME:sub) and routes[].idp'),
    issuer: httpUrl.describe('issuer URL; its /.well-known/openid-configuration is fetched at start'),
    client_id: z.string().min(1).describe('OAuth client id registered with the provider'),
    client_secret_file: secretFile
      .optional()
      .describe('0600 file with the client secret (client_secret_basic, client_secret_post)'),
    private_key_file: secretFile.optional().describe('0600 PKCS#8 PEM private key for private_key_jwt'),
    token_endpoint_auth_method: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'])
      .default('client_secret_basic')
      .describe('how Vigil authenticates to the token endpoint'),
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a scope token'))
      .default(['openid', 'email', 'profile', 'groups', 'offline_access'])
      .describe('scopes asked for at login; offline_access gets a refresh token that keeps groups fresh'),
    claims: z
      .strictObject({
        user_id: z.string().min(1).default('sub').describe('claim holding the stable user id'),
        email: z.string().min(1).default('email').describe('claim holding the email address'),
        groups: z
          .string()
          .min(1)
          .default('groups')
          .describe('claim holding the groups; a dotted path reaches nested claims (realm_access.roles)'),
      })
      .prefault({})
      .describe('where each identity attribute is read from in the ID token or bearer JWT'),
    algorithms: z
      .array(
        z.enum([
          'RS256',
          'RS384',
          'RS512',
          'PS256',
          'PS384',
          'PS512',
          'ES256',
          'ES384',
          'ES512',
          'EdDSA',
          'Ed25519',
        ]),
      )
      .min(1)
      .default(['RS256', 'ES256', 'PS256', 'EdDSA'])
      .describe('signature algorithms accepted from this issuer (never none, never a symmetric one)'),
    audience: z
      .string()
      .min(1)
      .optional()
      .describe('audience bearer JWTs must carry; the client id when unset'),
    typ: z.string().min(1).optional().describe('JWT typ header bearer tokens must carry (e.g. at+jwt)'),
    leeway: duration('30s').describe('clock skew tolerated on exp, nbf and iat'),
    refresh_interval: duration('15m').describe(
      "how often a session's groups are refreshed with its refresh token; a user removed from the IdP loses access then",
    ),
  });

  const devUser = z.strictObject({
    username: z
      .string()
      .regex(/^[a-z0-9._-]{1,64}$/, 'must be lower-case letters, digits, . _ -')
      .describe('login name, also the subject (sub)'),
    password: z.string().min(1).default('demo').describe('login form password (dev only)'),
    email: z.string().email().optional().describe('email claim; USERNAME@example.com when unset'),
    groups: z.array(z.string().min(1)).default([]).describe('groups claim'),
    amr: z
      .array(z.string().min(1))
      .default(['pwd'])
      .describe('authentication methods reported in amr; ["pwd","mfa"] marks MFA'),
  });

  return z
    .strictObject({
      server: z
        .strictObject({
          proxy_listen: listen('127.0.0.1:8080').describe(
            'address of the proxy listener (env VIGIL_PROXY_LISTEN)',
          ),
          admin_listen: listen('127.0.0.1:8081').describe(
            'address of the admin API, /healthz, /readyz and /metrics (env VIGIL_ADMIN_LISTEN)',
          ),
          data_dir: path
            .prefault('./.vigil-data')
            .describe('where SQLite, generated keys and tokens live (env VIGIL_DATA_DIR)'),
          shutdown_timeout: duration('10s').describe('how long in-flight requests may finish on SIGTERM'),
          tls: tls.optional().describe('serve the proxy listener over TLS'),
          http_redirect_listen: z
            .string()
            .optional()
            .transform((text, ctx) => {
              if (text === undefined) return undefined;
              const address = parseListen(text);
              if (!address) {
                ctx.addIssue({
                  code: 'custom',
                  message: `must be host:port, :port or [ipv6]:port (got "${text}")`,
                });
                return z.NEVER;
              }
              return address;
            })
            .describe('plain-HTTP listener that redirects every route to HTTPS (needs server.tls)'),
          public_url: httpUrl
            .optional()
            .describe(
              'URL users reach the proxy at; the issuer of X-Vigil-Assertion (default: the proxy listener URL)',
            ),
          trusted_proxies: z
            .array(z.string().refine((text) => isCidr(text), 'must be a CIDR such as 10.0.0.0/8 or ::1/128'))
            .default([])
            .describe('load balancers in front of Vigil whose X-Forwarded-For is believed'),
          max_body_bytes: z
            .number()
            .int()
            .positive()
            .default(10 * 1024 * 1024)
            .describe('largest request body the proxy forwards (413 beyond)'),
          request_timeout: duration('60s')
            .refine((ms) => ms > 0, 'must be longer than 0s')
            .describe(
              'how long a client may take to send a whole request, body included (408 beyond); raise it for large uploads on slow links',
            ),
        })
        .prefault({}),
      database: z
        .strictObject({
          url: z
            .string()
            .regex(/^(sqlite|postgres|postgresql):\/\//, 'must start with sqlite:// or postgres://')
            .optional()
            .describe(
              'sqlite:///abs/path.db, sqlite://relative.db (under data_dir) or postgres://user@host/db[?schema=name]; default: vigil.db in data_dir (env VIGIL_DATABASE_URL)',
            ),
        })
        .prefault({}),
      redis: z
        .strictObject({
          url: z
            .string()
            .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
            .optional()
            .describe(
              'shared counters (rate limits, lockouts) across replicas; memory when unset (env VIGIL_REDIS_URL)',
            ),
        })
        .prefault({}),
      log: z
        .strictObject({
          level: z
            .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
            .default('info')
            .describe('log level'),
          format: z
            .enum(['auto', 'json', 'pretty'])
            .default('auto')
            .describe('auto: pretty on a terminal, else JSON'),
        })
        .prefault({}),
      admin: z
        .strictObject({
          token_file: secretFile
            .optional()
            .describe('0600 file with the admin API bearer token; generated in data_dir when unset'),
        })
        .prefault({}),
      limits: z
        .strictObject({
          window: duration('1m').describe('window of the request rate limits'),
          per_identity: z
            .number()
            .int()
            .min(0)
            .default(3000)
            .describe('requests one user may make per window (429 beyond); 0 turns it off'),
          per_source: z
            .number()
            .int()
            .min(0)
            .default(6000)
            .describe('requests one source IP may make per window (429 beyond); 0 turns it off'),
          lockout_denials: z
            .number()
            .int()
            .min(0)
            .default(20)
            .describe(
              'policy denials from one source IP within one fixed lockout_window that lock it out: every request from it is then refused with 429 (locked-out), and adds no denial, for a full lockout_window from the denial that reached this number, also past the end of the window that counted it; with redis.url on every replica, within a sync (~100 ms); 0: off',
            ),
          lockout_window: duration('5m').describe(
            'how long a lockout lasts from the denial that triggered it, and the length of the fixed windows (aligned to the epoch) in which denials are counted',
          ),
        })
        .prefault({})
        .describe('rate limits and lockout; shared across replicas through redis.url when set'),
      audit: z
        .strictObject({
          on_full: z
            .enum(['fail-closed', 'shed'])
            .default('fail-closed')
            .describe(
              'when the write queue is full: deny new requests (fail-closed) or drop events and count them',
            ),
          queue_limit: z
            .number()
            .int()
            .positive()
            .default(100_000)
            .describe('decisions waiting to be written before on_full applies'),
          detectors: z
            .strictObject({
              brute_force: z
                .strictObject({
                  threshold: count(5).describe(
                    'alert when denials from one source exceed this many in the window',
                  ),
                  window: duration('5m'),
                })
                .prefault({})
                .describe('repeated denials from one source IP'),
              lateral_movement: z
                .strictObject({
                  max_routes: count(20).describe('distinct routes one identity may reach in the window'),
                  max_denied_routes: count(5).describe(
                    'distinct routes one identity may be denied on in the window',
                  ),
                  window: duration('15m'),
                })
                .prefault({})
                .describe('one identity sweeping many services'),
              token_replay: z
                .strictObject({
                  window: duration('10m').describe('a second source IP for one session within this'),
                })
                .prefault({})
                .describe('one session or token used from two places'),
              after_hours: z
                .strictObject({
                  time_zone: z
                    .string()
                    .refine((zone) => {
                      try {
                        new Intl.DateTimeFormat('en', { timeZone: zone });
                        return true;
                      } catch {
                        return false;
                      }
                    }, 'must be an IANA time zone such as Europe/Berlin')
                    .describe('IANA zone of the working hours, e.g. Europe/Berlin'),
                  workdays: z
                    .array(z.number().int().min(1).max(7))
                    .default([1, 2, 3, 4, 5])
                    .describe('ISO weekdays, 1 = Monday'),
                  start: z
                    .string()
                    .regex(/^\d{2}:\d{2}$/, 'must be HH:MM')
                    .default('08:00'),
                  end: z
                    .string()
                    .regex(/^\d{2}:\d{2}$/, 'must be HH:MM')
                    .default('18:00'),
                })
                .optional()
                .describe('access outside working hours (off unless a time zone is set)'),
            })
            .prefault({})
            .describe(
              'thresholds of the detectors that raise alerts (posture and new-device detectors are always on)',
            ),
          webhooks: z
            .array(
              z.strictObject({
                url: httpUrl.describe('receiver; each post carries X-Vigil-Signature (HMAC-SHA256)'),
                secret_file: secretFile.describe('0600 file with the HMAC key shared with the receiver'),
                kinds: z
                  .array(z.enum(['decision', 'admin', 'alert']))
                  .default(['alert'])
                  .describe('event kinds posted'),
              }),
            )
            .default([])
            .describe('webhooks the audit log posts to after each durable batch (on-call, SIEM)'),
          syslog: z
            .array(
              z.strictObject({
                host: z.string().min(1),
                port: z.number().int().min(1).max(65_535).default(514),
                protocol: z.enum(['udp', 'tcp']).default('udp'),
              }),
            )
            .default([])
            .describe('RFC 5424 syslog receivers the audit log streams to'),
        })
        .prefault({})
        .describe('the hash-chained audit log of every decision (see docs/audit.md)'),
      ca: z
        .strictObject({
          key_file: path
            .optional()
            .describe(
              '0600 file with the key that seals the CA private keys (or env VIGIL_CA_KEY); see vigil ca init',
            ),
          device_ttl: duration('24h').describe('lifetime of device certificates'),
          workload_ttl: duration('1h').describe('lifetime of workload certificates'),
          allow_rsa: z.boolean().default(false).describe('accept RSA (>= 2048 bit) keys in CSRs'),
        })
        .optional()
        .describe('serve the internal CA created with vigil ca init (bundle, CRL, revocation API)'),
      devices: z
        .strictObject({
          auto_approve: z
            .boolean()
            .default(false)
            .describe(
              'enrolled devices start managed; false: registered until an admin approves them or a posture provider vouches',
            ),
          authorization_ttl: duration('10m').describe(
            'how long the code of vigil device enroll waits for a browser approval',
          ),
          posture_max_skew: duration('5m').describe(
            'posture reports and provider webhooks timestamped further than this from the server clock are refused (replay window)',
          ),
          providers: z
            .array(
              z.strictObject({
                name: z
                  .string()
                  .regex(
                    /^[a-z0-9][a-z0-9-]{0,31}$/,
                    'must be lower-case letters, digits and dashes (max 32)',
                  )
                  .describe('posts to /.vigil/posture/<name>'),
                secret_file: secretFile.describe(
                  '0600 file with the HMAC-SHA256 key the provider signs its webhooks with',
                ),
                format: z
                  .enum(['generic', 'intune', 'jamf', 'crowdstrike'])
                  .default('generic')
                  .describe('payload shape (see docs/devices.md)'),
                vouch_managed: z
                  .boolean()
                  .default(true)
                  .describe('a device this provider reports as managed becomes managed'),
              }),
            )
            .default([])
            .superRefine((providers, ctx) => {
              const seen = new Set<string>();
              for (const [index, provider] of providers.entries()) {
                if (seen.has(provider.name))
                  ctx.addIssue({ code: 'custom', path: [index, 'name'], message: 'duplicate provider name' });
                seen.add(provider.name);
              }
            })
            .describe('MDM/EDR systems that post device posture (Jamf, Intune, CrowdStrike style)'),
        })
        .prefault({})
        .describe('device enrollment and posture (needs ca; see docs/devices.md)'),
      policy_files: z.array(path).default([]).describe('policy YAML files (see docs/policy.md)'),
      routes: z.array(route).default([]).describe('what the proxy serves and which policy guards it'),
      identity_providers: z
        .array(identityProvider)
        .default([])
        .describe('OpenID Connect providers users log in with; several may be configured at once'),
      session: z
        .strictObject({
          cookie_name: z
            .string()
            .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be letters, digits, _ and - (max 64)')
            .default('_vigil_session')
            .describe('name of the encrypted session cookie'),
          max_age: duration('12h').describe('absolute lifetime of a session, whatever its activity'),
          idle_timeout: duration('1h').describe('a session unused for this long ends'),
          secret_file: secretFile
            .optional()
            .describe(
              '0600 file with the 32-byte base64url key sealing session cookies; generated in data_dir when unset',
            ),
        })
        .prefault({}),
      dev_idp: z
        .preprocess(
          (value) => (value === true ? {} : value === undefined ? false : value),
          z.union([
            z.literal(false),
            z.strictObject({
              listen: listen('127.0.0.1:9400').describe('loopback address of the dev IdP (port 0 picks one)'),
              name: idpName.default('dev').describe('name of the dev IdP among the identity providers'),
              users: z
                .array(devUser)
                .optional()
                .describe(
                  'demo users; alice (engineering, sre, MFA), bob (contractors) and carol (finance) when unset',
                ),
            }),
          ]),
        )
        .describe(
          'built-in demo identity provider for vigil up and tests; never for production (true: defaults)',
        ),
    })
    .superRefine((config, ctx) => {
      if (config.server.http_redirect_listen && !config.server.tls) {
        ctx.addIssue({
          code: 'custom',
          path: ['server', 'http_redirect_listen'],
          message: 'redirects to HTTPS need server.tls (a certificate for the proxy listener)',
        });
      }
      const seen = new Map<string, number>();
      config.routes.forEach((route, index) => {
        const previous = seen.get(route.name);
        if (previous !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', index, 'name'],
            message: `duplicate route name "${route.name}" (first at routes[${previous}])`,
          });
        }
        seen.set(route.name, index);
      });
      const idps = new Map<string, number>();
      config.identity_providers.forEach((idp, index) => {
        const previous = idps.get(idp.name);
        if (previous !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['identity_providers', index, 'name'],
            message: `duplicate identity provider name "${idp.name}" (first at identity_providers[${previous}])`,
          });
        }
        idps.set(idp.name, index);
        const needs =
          idp.token_endpoint_auth_method === 'private_key_jwt' ? 'private_key_file' : 'client_secret_file';
        if (idp[needs] === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['identity_providers', index, needs],
            message: `${idp.token_endpoint_auth_method} needs ${needs}`,
          });
        }
      });
      const devName = config.dev_idp === false ? undefined : config.dev_idp.name;
      config.routes.forEach((route, index) => {
        if (route.idp !== undefined && !idps.has(route.idp) && route.idp !== devName) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', index, 'idp'],
            message: `no identity provider named "${route.idp}"`,
          });
        }
      });
    });
}

export type VigilConfig = z.output<ReturnType<typeof configSchema>>;
export type RouteConfig = VigilConfig['routes'][number];
export type IdentityProviderConfig = VigilConfig['identity_providers'][number];
export type SessionConfig = VigilConfig['session'];
export type DevIdpConfig = Exclude<VigilConfig['dev_idp'], false>;

import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseDuration } from '../internal/duration.ts';
import { readSecretFile } from '../internal/secrets.ts';

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
      const why = {
        missing: `${full} does not exist`,
        'not-a-file': `${full} is not a regular file`,
        'too-open': `${full} is readable by group or others (mode 0${(read.mode ?? 0).toString(8)}); run chmod 600 ${full}`,
        empty: `${full} is empty`,
      }[read.problem];
      ctx.addIssue({ code: 'custom', message: why });
      return z.NEVER;
    });

  const tls = z.strictObject({
    cert_file: path.describe('PEM certificate chain of the proxy listener'),
    key_file: path.describe('PEM private key of the proxy listener'),
    client_ca_file: path
      .optional()
      .describe('ask for client certificates signed by this CA (device binding)'),
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
    mode: z
      .enum(['enforce', 'audit'])
      .default('enforce')
      .describe('audit logs the would-be decision and lets the request through (for rollouts)'),
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
      policy_files: z.array(path).default([]).describe('policy YAML files (see docs/policy.md)'),
      routes: z.array(route).default([]).describe('what the proxy serves and which policy guards it'),
    })
    .superRefine((config, ctx) => {
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
    });
}

export type VigilConfig = z.output<ReturnType<typeof configSchema>>;
export type RouteConfig = VigilConfig['routes'][number];

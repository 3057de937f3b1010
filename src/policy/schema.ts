import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from '../internal/duration.ts';
import { parseCidr } from './conditions/network.ts';
import { isTimeZone, parseClock, parseInstant } from './conditions/time.ts';

/** One condition as written. Several keys in one object all have to hold (an implicit `and`). */
export interface ConditionSpec {
  and?: ConditionSpec[];
  or?: ConditionSpec[];
  not?: ConditionSpec;
  authenticated?: boolean;
  user?: string[];
  email?: string[];
  email_domain?: string[];
  groups?: { any?: string[]; all?: string[] };
  claim?: { path: string; equals?: string | number | boolean; in?: (string | number | boolean)[] };
  mfa?: boolean;
  amr?: { any?: string[]; all?: string[] };
  auth_age?: string;
  device?: 'none' | 'registered' | 'managed';
  device_id?: string[];
  posture?: PostureSpec;
  source_ip?: string[];
  time?: TimeSpec;
  method?: string[];
  path?: { prefix?: string | string[]; glob?: string | string[]; equals?: string | string[] };
  header?: { name: string; equals?: string; in?: string[] };
  spiffe_id?: { equals?: string | string[]; glob?: string | string[] };
  client_certificate?: boolean;
}

export interface PostureSpec {
  os_family?: string[];
  min_os_version?: Record<string, string>;
  disk_encrypted?: boolean;
  firewall?: boolean;
  screen_lock?: boolean;
  edr_running?: boolean;
  compliant?: boolean;
  max_age?: string;
}

export interface TimeSpec {
  zone?: string;
  weekdays?: Weekday[];
  hours?: { from: string; to: string };
  valid_from?: string;
  valid_until?: string;
}

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const text = z.string({ error: 'expected string' }).min(1, { error: 'expected a non-empty string' });
const list = (item: z.ZodType<string> = text) =>
  z
    .array(item, { error: 'expected array of strings' })
    .min(1, { error: 'expected at least one entry' })
    .max(10_000, { error: 'too many entries (max 10000)' });
const oneOrMany = z.union([text, list()], { error: 'expected string or array of strings' });
// Globs become backtracking regular expressions matched against request paths; one `**`
// and a bounded length keep the worst case linear-ish in the path length.
const globText = text
  .max(512, { error: 'glob longer than 512 characters' })
  .refine((value) => (value.match(/\*\*/g) ?? []).length <= 1, { error: 'at most one ** per glob' })
  .refine((value) => !value.includes('***'), { error: 'expected * or **, not ***' });
const globs = z.union([globText, list(globText)], { error: 'expected string or array of strings' });
const duration = text.refine((value) => parseDuration(value) !== undefined, {
  error: 'expected a duration such as 90s, 15m, 4h, 7d',
});
const scalar = z.union([z.string(), z.number(), z.boolean()], {
  error: 'expected string, number or boolean',
});
const version = text.regex(/^\d+(\.\d+){0,3}$/, { error: 'expected a dotted numeric version such as 14.0' });

const anyAll = z
  .strictObject({ any: list().optional(), all: list().optional() })
  .refine((value) => (value.any === undefined) !== (value.all === undefined), {
    error: 'expected exactly one of any, all',
  });

const posture: z.ZodType<PostureSpec> = z
  .strictObject({
    os_family: list(text.transform((value) => value.toLowerCase())).optional(),
    min_os_version: z
      .record(
        text.transform((value) => value.toLowerCase()),
        version,
      )
      .optional(),
    disk_encrypted: z.boolean().optional(),
    firewall: z.boolean().optional(),
    screen_lock: z.boolean().optional(),
    edr_running: z.boolean().optional(),
    compliant: z.boolean().optional(),
    max_age: duration.optional(),
  })
  .refine((value) => Object.keys(value).length > 0, { error: 'expected at least one posture check' });

const time: z.ZodType<TimeSpec> = z
  .strictObject({
    zone: text.refine(isTimeZone, { error: 'unknown IANA time zone' }).optional(),
    weekdays: z
      .array(z.enum(WEEKDAYS, { error: 'expected weekday: sun, mon, tue, wed, thu, fri, sat' }))
      .min(1)
      .optional(),
    hours: z
      .strictObject({
        from: text.refine((value) => parseClock(value) !== undefined, { error: 'expected HH:MM' }),
        to: text.refine((value) => parseClock(value) !== undefined, { error: 'expected HH:MM' }),
      })
      .optional(),
    valid_from: text
      .refine((value) => parseInstant(value) !== undefined, {
        error: 'expected an ISO 8601 date or date-time with offset',
      })
      .optional(),
    valid_until: text
      .refine((value) => parseInstant(value) !== undefined, {
        error: 'expected an ISO 8601 date or date-time with offset',
      })
      .optional(),
  })
  .refine((value) => Object.keys(value).some((key) => key !== 'zone'), {
    error: 'expected at least one of weekdays, hours, valid_from, valid_until',
  });

const exactlyOne = (keys: readonly string[]) => (value: Record<string, unknown>) =>
  keys.filter((key) => value[key] !== undefined).length === 1;

const condition: z.ZodType<ConditionSpec> = z.lazy(() =>
  z
    .strictObject({
      and: z.array(condition, { error: 'expected array of conditions' }).min(1).optional(),
      or: z.array(condition, { error: 'expected array of conditions' }).min(1).optional(),
      not: condition.optional(),
      authenticated: z.literal(true, { error: 'expected true' }).optional(),
      user: list().optional(),
      email: list(text.transform((value) => value.toLowerCase())).optional(),
      email_domain: list(
        text
          .transform((value) => value.toLowerCase().replace(/^@/, ''))
          .refine((value) => value !== '' && !value.includes('@'), {
            error: 'expected a domain such as company.com',
          }),
      ).optional(),
      groups: anyAll.optional(),
      claim: z
        .strictObject({ path: text, equals: scalar.optional(), in: z.array(scalar).min(1).optional() })
        .refine(exactlyOne(['equals', 'in']), { error: 'expected exactly one of equals, in' })
        .optional(),
      mfa: z.literal(true, { error: 'expected true' }).optional(),
      amr: anyAll.optional(),
      auth_age: duration.optional(),
      device: z
        .enum(['none', 'registered', 'managed'], { error: 'expected none, registered or managed' })
        .optional(),
      device_id: list().optional(),
      posture: posture.optional(),
      source_ip: list(
        text.refine((value) => parseCidr(value) !== undefined, {
          error: 'expected an IPv4 or IPv6 address or CIDR',
        }),
      ).optional(),
      time: time.optional(),
      method: list(text.transform((value) => value.toUpperCase())).optional(),
      path: z
        .strictObject({
          prefix: oneOrMany.optional(),
          glob: globs.optional(),
          equals: oneOrMany.optional(),
        })
        .refine(exactlyOne(['prefix', 'glob', 'equals']), {
          error: 'expected exactly one of prefix, glob, equals',
        })
        .optional(),
      header: z
        .strictObject({
          name: text.transform((value) => value.toLowerCase()),
          equals: z.string().optional(),
          in: list().optional(),
        })
        .refine(exactlyOne(['equals', 'in']), { error: 'expected exactly one of equals, in' })
        .optional(),
      spiffe_id: z
        .strictObject({ equals: oneOrMany.optional(), glob: globs.optional() })
        .refine(exactlyOne(['equals', 'glob']), { error: 'expected exactly one of equals, glob' })
        .optional(),
      client_certificate: z.literal(true, { error: 'expected true' }).optional(),
    })
    .refine((value) => Object.keys(value).length > 0, { error: 'expected at least one condition' }),
);

/** `true` is an unconditional rule; anything else is a condition. */
const ruleBody = z.union([z.literal(true), condition], { error: 'expected true or a condition object' });

export type RuleBody = true | ConditionSpec;

const rule = z
  .strictObject({
    name: text.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { error: 'expected a name of letters, digits, - _ .' }),
    description: z.string().optional(),
    allow: ruleBody.optional(),
    deny: ruleBody.optional(),
  })
  .refine(exactlyOne(['allow', 'deny']), { error: 'expected exactly one of allow, deny' });

const policy = z.strictObject({
  name: text.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { error: 'expected a name of letters, digits, - _ .' }),
  description: z.string().optional(),
  rules: z.array(rule, { error: 'expected array of rules' }).max(10_000),
});

const route = z.strictObject({
  host: text
    .transform((value) => value.toLowerCase())
    .refine((value) => /^[a-z0-9.-]+$/.test(value) || isIP(value) !== 0, { error: 'expected a host name' }),
  path_prefix: text
    .refine((value) => value.startsWith('/'), { error: 'expected a path starting with /' })
    .default('/'),
  policy: text,
  mode: z.enum(['enforce', 'audit'], { error: 'expected enforce or audit' }).default('enforce'),
});

export const documentSchema = z.strictObject({
  policies: z.array(policy, { error: 'expected array of policies' }).default([]),
  routes: z.array(route, { error: 'expected array of routes' }).default([]),
});

export type RuleSpec = z.infer<typeof rule>;
export type PolicySpec = z.infer<typeof policy>;
export type RouteEntry = z.infer<typeof route>;
export type DocumentSpec = z.infer<typeof documentSchema>;

// Inputs for `vigil policy eval` and test files: the PolicyInput shape, with times also
// accepted as ISO strings so that files stay readable.
const instant = z.union([
  z.number().int(),
  text.refine((value) => parseInstant(value) !== undefined, {
    error: 'expected epoch ms or ISO 8601 date-time',
  }),
]);
const toMs = (value: number | string): number =>
  typeof value === 'number' ? value : (parseInstant(value) as number);

export const inputSchema = z.strictObject({
  host: text.transform((value) => value.toLowerCase()),
  path: text,
  method: text.transform((value) => value.toUpperCase()).default('GET'),
  headers: z.record(z.string(), z.string()).optional(),
  sourceIp: z.string().optional(),
  now: instant.transform(toMs).optional(),
  user: z
    .strictObject({
      id: text,
      email: z.string().optional(),
      groups: z.array(z.string()).default([]),
      claims: z.record(z.string(), z.unknown()).optional(),
      amr: z.array(z.string()).optional(),
      authTime: instant.transform(toMs).optional(),
    })
    .optional(),
  device: z
    .strictObject({
      id: text,
      state: z.enum(['registered', 'managed', 'revoked']),
      posture: z
        .strictObject({
          osFamily: z.string().optional(),
          osVersion: z.string().optional(),
          diskEncrypted: z.boolean().optional(),
          firewall: z.boolean().optional(),
          screenLock: z.boolean().optional(),
          edrRunning: z.boolean().optional(),
          compliant: z.boolean().optional(),
          reportedAt: instant.transform(toMs),
        })
        .optional(),
    })
    .optional(),
  workload: z.strictObject({ spiffeId: text }).optional(),
  clientCertificate: z.boolean().optional(),
});

const reasonList = z.array(z.string()).optional();

export const testFileSchema = z.strictObject({
  policy_files: z.array(text).optional(),
  now: instant.transform(toMs).optional(),
  tests: z
    .array(
      z.strictObject({
        name: text,
        request: inputSchema,
        expect: z.strictObject({
          effect: z.enum(['allow', 'deny']),
          rule: z.string().nullable().optional(),
          reasons: reasonList,
          mode: z.enum(['enforce', 'audit']).optional(),
        }),
      }),
    )
    .min(1),
});

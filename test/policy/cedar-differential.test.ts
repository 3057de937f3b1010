import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import fc from 'fast-check';
import { compilePolicies, type PolicyInput, parsePolicyText } from '../../src/policy/index.ts';

// The subset of the language Cedar can express directly, translated so that Vigil's
// three-valued semantics (a missing attribute is "unknown": an allow needs its condition
// definitely true, a deny fires unless its condition is definitely false) become Cedar
// `has` guards. T(c) is "c is definitely true", F(c) "c is definitely false".

type Condition =
  | { groups: { any: string[] } | { all: string[] } }
  | { user: string[] }
  | { email: string[] }
  | { method: string[] }
  | { path: { equals: string } }
  | { device: 'managed' | 'registered' }
  | { posture: Partial<Record<PostureKey, boolean>> }
  | { and: Condition[] }
  | { or: Condition[] }
  | { not: Condition };

type PostureKey = 'disk_encrypted' | 'firewall' | 'screen_lock' | 'edr_running';
const POSTURE_FIELD: Record<PostureKey, string> = {
  disk_encrypted: 'diskEncrypted',
  firewall: 'firewall',
  screen_lock: 'screenLock',
  edr_running: 'edrRunning',
};

interface Rule {
  name: string;
  effect: 'allow' | 'deny';
  body: true | Condition;
}

const GROUPS = ['sre', 'eng', 'contractors', 'admins'];
const USERS = ['u1', 'u2', 'u3'];
const EMAILS = ['ada@company.com', 'bob@agency.example'];
const METHODS = ['GET', 'POST', 'DELETE'];
const PATHS = ['/', '/admin', '/wiki'];

const some = (items: string[]) => fc.subarray(items, { minLength: 1 });

const { condition } = fc.letrec<{ condition: Condition }>((tie) => ({
  condition: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ groups: fc.oneof(fc.record({ any: some(GROUPS) }), fc.record({ all: some(GROUPS) })) }),
    fc.record({ user: some(USERS) }),
    fc.record({ email: some(EMAILS) }),
    fc.record({ method: some(METHODS) }),
    fc.record({ path: fc.record({ equals: fc.constantFrom(...PATHS) }) }),
    fc.record({ device: fc.constantFrom('managed' as const, 'registered' as const) }),
    fc.record({
      posture: fc.dictionary(
        fc.constantFrom<PostureKey>('disk_encrypted', 'firewall', 'screen_lock', 'edr_running'),
        fc.boolean(),
        {
          minKeys: 1,
          maxKeys: 2,
        },
      ),
    }),
    fc.record({ and: fc.array(tie('condition'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ or: fc.array(tie('condition'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ not: tie('condition') }),
  ),
}));

const rules = fc
  .array(
    fc.record({
      effect: fc.constantFrom('allow' as const, 'deny' as const),
      body: fc.oneof(
        { weight: 1, arbitrary: fc.constant(true as const) },
        { weight: 8, arbitrary: condition },
      ),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((list): Rule[] => list.map((rule, index) => ({ name: `r${index}`, ...rule })));

const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });

const request = fc.record({
  method: fc.constantFrom(...METHODS),
  path: fc.constantFrom(...PATHS),
  user: maybe(
    fc.record({
      id: fc.constantFrom(...USERS),
      email: maybe(fc.constantFrom(...EMAILS)),
      groups: fc.subarray(GROUPS),
    }),
  ),
  device: maybe(
    fc.record({
      id: fc.constant('d1'),
      state: fc.constantFrom('managed' as const, 'registered' as const, 'revoked' as const),
      posture: maybe(
        fc.record(
          {
            diskEncrypted: fc.boolean(),
            firewall: fc.boolean(),
            screenLock: fc.boolean(),
            edrRunning: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
      ),
    }),
  ),
});

const str = (value: string) => JSON.stringify(value);
const set = (values: readonly string[]) => `[${values.map(str).join(', ')}]`;

/** [definitely true, definitely false] as Cedar expressions. */
function translate(c: Condition): [string, string] {
  const guarded = (has: string, test: string): [string, string] => [
    `(${has} && (${test}))`,
    `(${has} && !(${test}))`,
  ];
  if ('groups' in c) {
    const test =
      'any' in c.groups
        ? `context.user.groups.containsAny(${set(c.groups.any)})`
        : `context.user.groups.containsAll(${set(c.groups.all)})`;
    return guarded('context has user', test);
  }
  if ('user' in c) return guarded('context has user', `${set(c.user)}.contains(context.user.id)`);
  if ('email' in c)
    return guarded(
      'context has user && context.user has email',
      `${set(c.email)}.contains(context.user.email)`,
    );
  if ('method' in c) return guarded('true', `${set(c.method)}.contains(context.method)`);
  if ('path' in c) return guarded('true', `context.path == ${str(c.path.equals)}`);
  if ('device' in c) {
    const test =
      c.device === 'managed'
        ? 'context.device.state == "managed"'
        : 'context.device.state == "managed" || context.device.state == "registered"';
    return guarded('context has device', test);
  }
  if ('posture' in c) {
    const parts = Object.entries(c.posture).map(([key, wanted]): [string, string] => {
      const field = POSTURE_FIELD[key as PostureKey];
      const known = `context.device has posture && context.device.posture has ${field}`;
      const value = `context.device.posture.${field} == ${wanted}`;
      return [
        `(context has device && context.device.state != "revoked" && ${known} && ${value})`,
        `(context has device && (context.device.state == "revoked" || (${known} && !(${value}))))`,
      ];
    });
    return [
      `(${parts.map((part) => part[0]).join(' && ')})`,
      `(${parts.map((part) => part[1]).join(' || ')})`,
    ];
  }
  if ('and' in c) {
    const parts = c.and.map(translate);
    return [
      `(${parts.map((part) => part[0]).join(' && ')})`,
      `(${parts.map((part) => part[1]).join(' || ')})`,
    ];
  }
  if ('or' in c) {
    const parts = c.or.map(translate);
    return [
      `(${parts.map((part) => part[0]).join(' || ')})`,
      `(${parts.map((part) => part[1]).join(' && ')})`,
    ];
  }
  const [t, f] = translate(c.not);
  return [f, t];
}

function toCedar(list: readonly Rule[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rule of list) {
    if (rule.body === true) {
      out[rule.name] = `${rule.effect === 'allow' ? 'permit' : 'forbid'}(principal, action, resource);`;
      continue;
    }
    const [t, f] = translate(rule.body);
    out[rule.name] =
      rule.effect === 'allow'
        ? `permit(principal, action, resource) when { ${t} };`
        : `forbid(principal, action, resource) when { !${f} };`;
  }
  return out;
}

function toContext(input: PolicyInput): Record<string, cedar.CedarValueJson> {
  const context: Record<string, cedar.CedarValueJson> = { method: input.method, path: input.path };
  if (input.user) {
    const user: Record<string, cedar.CedarValueJson> = { id: input.user.id, groups: [...input.user.groups] };
    if (input.user.email !== undefined) user.email = input.user.email;
    context.user = user;
  }
  if (input.device) {
    const device: Record<string, cedar.CedarValueJson> = { state: input.device.state };
    if (input.device.posture) {
      const posture: Record<string, cedar.CedarValueJson> = {};
      for (const [key, value] of Object.entries(input.device.posture)) {
        if (typeof value === 'boolean') posture[key] = value;
      }
      device.posture = posture;
    }
    context.device = device;
  }
  return context;
}

let setCounter = 0;

test('Vigil and Cedar reach the same decision on random policies and requests', () => {
  const started = performance.now();
  let cases = 0;
  fc.assert(
    fc.property(rules, fc.array(request, { minLength: 8, maxLength: 8 }), (list, requests) => {
      const document = {
        policies: [
          {
            name: 'generated',
            rules: list.map((rule) => ({ name: rule.name, [rule.effect]: rule.body })),
          },
        ],
        routes: [{ host: 'app.example', policy: 'generated' }],
      };
      const compiled = compilePolicies([parsePolicyText(JSON.stringify(document), 'generated.json')]);
      const id = `diff-${setCounter++}`;
      const parsed = cedar.preparsePolicySet(id, { staticPolicies: toCedar(list) });
      assert.equal(parsed.type, 'success', JSON.stringify(parsed));
      for (const generated of requests) {
        cases++;
        const input: PolicyInput = {
          host: 'app.example',
          path: generated.path,
          method: generated.method,
          now: 0,
          ...(generated.user ? { user: generated.user } : {}),
          ...(generated.device
            ? {
                device: {
                  id: generated.device.id,
                  state: generated.device.state,
                  ...(generated.device.posture
                    ? { posture: { ...generated.device.posture, reportedAt: 0 } }
                    : {}),
                },
              }
            : {}),
        } as PolicyInput;
        const vigil = compiled.decide(input);
        const answer = cedar.statefulIsAuthorized({
          principal: { type: 'User', id: 'anyone' },
          action: { type: 'Action', id: 'access' },
          resource: { type: 'Route', id: 'app' },
          context: toContext(input),
          preparsedPolicySetId: id,
          entities: [],
        });
        assert.equal(answer.type, 'success');
        if (answer.type !== 'success') return;
        assert.deepEqual(answer.response.diagnostics.errors, []);
        const message = `rules ${JSON.stringify(list)}\nrequest ${JSON.stringify(input)}\ncedar ${JSON.stringify(answer.response)}\nvigil ${JSON.stringify(vigil)}`;
        assert.equal(vigil.effect, answer.response.decision, message);
        if (vigil.rule !== null) assert.ok(answer.response.diagnostics.reason.includes(vigil.rule), message);
        assert.equal(compiled.decide(input, { explain: true }).effect, vigil.effect);
      }
    }),
    { numRuns: 500 },
  );
  assert.ok(cases >= 3000, `ran ${cases} cases`);
  assert.ok(performance.now() - started < 20_000, 'the differential run stays under 20 s');
});

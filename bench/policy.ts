// Policy decision throughput: 1,000 routes x 5 rules, 100k mixed requests.
// Vigil (public decide API) against cedar-wasm (one preparsed set per route), node-casbin
// (RBAC with domains + an eval() ABAC matcher) and a hand-written closure baseline.
// Progress on stderr; the JSON result is the last line on stdout.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { newEnforcer, newModelFromString, Util } from 'casbin';
import { compilePolicies, type PolicyInput, parsePolicyText } from '../src/policy/index.ts';

const HOSTS = 200;
const PREFIXES = ['/', '/api', '/admin', '/wiki', '/reports'];
const ROUTES = HOSTS * PREFIXES.length;
const REQUESTS = 100_000;
const CEDAR_SAMPLE = 20_000;
const CASBIN_SAMPLE = 10_000;
const BATCH = 64;
const TEAMS = 50;
const NOW = Date.UTC(2026, 2, 2, 10, 0, 0);

const log = (text: string) => process.stderr.write(`[bench policy] ${text}\n`);

// Deterministic inputs: mulberry32.
let seed = 0x5eed;
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

interface Route {
  id: string;
  host: string;
  prefix: string;
  team: string;
}
const routes: Route[] = [];
for (let h = 0; h < HOSTS; h++) {
  for (const prefix of PREFIXES) {
    const index = routes.length;
    routes.push({ id: `r${index}`, host: `app${h}.corp.example`, prefix, team: `team-${index % TEAMS}` });
  }
}

// ---- Vigil --------------------------------------------------------------------------
// `unique` gives every route's rules a distinct never-matching extra entry, so no two
// routes share a compiled rule: the worst case for Vigil's sharing of identical rules.
function policyDocument(unique: boolean) {
  const extra = (index: number, value: string) => (unique ? [value, `zz-unused-${index}`] : [value]);
  return {
    policies: routes.map((route, index) => ({
      name: `p-${route.id}`,
      rules: [
        {
          name: 'contractors-never-admin',
          deny: { and: [{ groups: { any: extra(index, 'contractors') } }, { path: { prefix: '/admin' } }] },
        },
        {
          name: 'blocked-network',
          deny: {
            source_ip: unique
              ? ['203.0.113.0/24', `198.18.${index % 256}.${index >> 8}/32`]
              : ['203.0.113.0/24'],
          },
        },
        { name: 'team', allow: { groups: { any: [route.team] } } },
        {
          name: 'staff-compliant',
          allow: {
            and: [
              { email_domain: unique ? ['company.com', `r${index}.invalid`] : ['company.com'] },
              { device: 'managed' },
              { posture: { disk_encrypted: true } },
            ],
          },
        },
        {
          name: 'contractors-read',
          allow: { and: [{ groups: { any: extra(index, 'contractors') } }, { method: ['GET', 'HEAD'] }] },
        },
      ],
    })),
    routes: routes.map((route) => ({ host: route.host, path_prefix: route.prefix, policy: `p-${route.id}` })),
  };
}
const vigil = compilePolicies([parsePolicyText(JSON.stringify(policyDocument(false)), 'bench.json')]);
const vigilUnique = compilePolicies([
  parsePolicyText(JSON.stringify(policyDocument(true)), 'bench-unique.json'),
]);

// ---- requests -------------------------------------------------------------------------
const SUBPATHS = ['', '/', '/x', '/users/42', '/dashboards/cpu'];
const requests: PolicyInput[] = [];
for (let i = 0; i < REQUESTS; i++) {
  const host = random() < 0.02 ? 'unknown.corp.example' : `app${Math.floor(random() * HOSTS)}.corp.example`;
  const prefix = pick(PREFIXES);
  const path = (prefix === '/' ? '' : prefix) + (pick(SUBPATHS) || (prefix === '/' ? '/' : ''));
  const authenticated = random() < 0.95;
  const contractor = random() < 0.25;
  const groups = contractor ? ['contractors'] : [`team-${Math.floor(random() * TEAMS)}`, 'engineering'];
  const deviceRoll = random();
  requests.push({
    host,
    path,
    method: pick(['GET', 'GET', 'GET', 'POST', 'HEAD', 'DELETE']),
    sourceIp:
      random() < 0.05
        ? `203.0.113.${Math.floor(random() * 255)}`
        : `10.${Math.floor(random() * 255)}.0.${Math.floor(random() * 255)}`,
    now: NOW,
    ...(authenticated
      ? {
          user: {
            // A user's groups are the same in every request (casbin keeps memberships).
            id: `${groups[0]}-u${Math.floor(random() * 40)}`,
            email: contractor ? 'x@agency.example' : 'y@company.com',
            groups,
          },
        }
      : {}),
    ...(deviceRoll < 0.15
      ? {}
      : {
          device: {
            id: 'd',
            state: deviceRoll < 0.3 ? ('registered' as const) : ('managed' as const),
            posture: { diskEncrypted: random() < 0.9, reportedAt: NOW },
          },
        }),
  });
}

// Route per request, for the peers that take the route as given.
const routeOf = requests.map((request) => {
  const route = vigil.routeFor(request.host, request.path);
  return route === undefined ? -1 : Number(route.policy.name.slice(3));
});

// ---- hand-written baseline -----------------------------------------------------------
type Verdict = { effect: 'allow' | 'deny'; rule: string | null };
const ALLOW_TEAM: Verdict = { effect: 'allow', rule: 'team' };
const ALLOW_STAFF: Verdict = { effect: 'allow', rule: 'staff-compliant' };
const ALLOW_READ: Verdict = { effect: 'allow', rule: 'contractors-read' };
const DENY_ADMIN: Verdict = { effect: 'deny', rule: 'contractors-never-admin' };
const DENY_NET: Verdict = { effect: 'deny', rule: 'blocked-network' };
const DENY_NONE: Verdict = { effect: 'deny', rule: null };
const baselineRoutes = new Map<string, { prefix: string; decide: (input: PolicyInput) => Verdict }[]>();
for (const route of routes) {
  const team = route.team;
  const decide = (input: PolicyInput): Verdict => {
    const user = input.user;
    const contractor = user?.groups.includes('contractors') === true;
    // Vigil fails closed: a deny whose attribute is unknown (no user) fires.
    if ((user === undefined || contractor) && input.path.startsWith('/admin')) return DENY_ADMIN;
    const ip = input.sourceIp;
    if (ip === undefined || ip.startsWith('203.0.113.')) return DENY_NET;
    if (user === undefined) return DENY_NONE;
    if (user.groups.includes(team)) return ALLOW_TEAM;
    const email = user.email;
    const device = input.device;
    if (
      email?.endsWith('@company.com') &&
      device?.state === 'managed' &&
      device.posture?.diskEncrypted === true
    ) {
      return ALLOW_STAFF;
    }
    if (contractor && (input.method === 'GET' || input.method === 'HEAD')) return ALLOW_READ;
    return DENY_NONE;
  };
  const list = baselineRoutes.get(route.host) ?? [];
  list.push({ prefix: route.prefix, decide });
  list.sort((a, b) => b.prefix.length - a.prefix.length);
  baselineRoutes.set(route.host, list);
}
function baseline(input: PolicyInput): Verdict {
  const list = baselineRoutes.get(input.host);
  if (list === undefined) return DENY_NONE;
  const path = input.path;
  for (const entry of list) {
    const prefix = entry.prefix;
    if (
      prefix === '/' ||
      (path.startsWith(prefix) && (path.length === prefix.length || path[prefix.length] === '/'))
    ) {
      return entry.decide(input);
    }
  }
  return DENY_NONE;
}

// ---- timing ----------------------------------------------------------------------------
function throughput(name: string, count: number, run: (index: number) => unknown, passes: number): number {
  for (let i = 0; i < Math.min(count, 20_000); i++) run(i);
  let best = 0;
  for (let pass = 0; pass < passes; pass++) {
    globalThis.gc?.();
    const start = process.hrtime.bigint();
    for (let i = 0; i < count; i++) run(i);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    best = Math.max(best, count / seconds);
  }
  log(
    `${name}: ${Math.round(best).toLocaleString('en-US')} decisions/s (${count} requests, best of ${passes})`,
  );
  return best;
}

/** p99 of per-decision time, measured over batches so that the timer's own cost does not dominate. */
function p99Micros(run: (index: number) => unknown, count: number): number {
  const samples: number[] = [];
  for (let pass = 0; pass < 3; pass++) {
    for (let start = 0; start + BATCH <= count; start += BATCH) {
      const begin = process.hrtime.bigint();
      for (let i = start; i < start + BATCH; i++) run(i);
      samples.push(Number(process.hrtime.bigint() - begin) / BATCH / 1000);
    }
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length * 0.99)] as number;
}

// Sanity: Vigil and the baseline agree on every request.
let disagreements = 0;
for (let i = 0; i < REQUESTS; i++) {
  const input = requests[i] as PolicyInput;
  const a = vigil.decide(input);
  const b = baseline(input);
  const unique = vigilUnique.decide(input);
  if (unique.effect !== a.effect || unique.rule !== a.rule) disagreements++;
  if (a.effect !== b.effect || (b.rule !== null && a.rule !== b.rule)) {
    if (disagreements++ === 0) log(`first disagreement: ${JSON.stringify({ input, vigil: a, baseline: b })}`);
  }
}
if (disagreements > 0) throw new Error(`vigil and baseline disagree on ${disagreements} requests`);
log(`vigil and baseline agree on all ${REQUESTS} requests`);

let sink = 0;
const vigilRun = (i: number) => {
  sink ^= vigil.decide(requests[i] as PolicyInput).effect.length;
};
const baselineRun = (i: number) => {
  sink ^= baseline(requests[i] as PolicyInput).effect.length;
};
const vigilRate = throughput('vigil', REQUESTS, vigilRun, 5);
const uniqueRate = throughput(
  'vigil, no rule shared between routes',
  REQUESTS,
  (i) => {
    sink ^= vigilUnique.decide(requests[i] as PolicyInput).effect.length;
  },
  5,
);
const p99 = p99Micros(vigilRun, REQUESTS);
log(`vigil p99: ${p99.toFixed(3)} us per decision (batches of ${BATCH})`);
// Per-call timing, timer cost included: an upper bound on single-decision latency.
const single: number[] = [];
for (let i = 0; i < REQUESTS; i++) {
  const begin = process.hrtime.bigint();
  vigilRun(i);
  single.push(Number(process.hrtime.bigint() - begin) / 1000);
}
single.sort((a, b) => a - b);
const p99Single = single[Math.floor(single.length * 0.99)] as number;
log(`vigil p99 per single call (timer included): ${p99Single.toFixed(3)} us`);
const baselineRate = throughput('baseline', REQUESTS, baselineRun, 5);

// ---- cedar-wasm ---------------------------------------------------------------------------
log('cedar-wasm: preparsing one policy set per route');
for (const route of routes) {
  const answer = cedar.preparsePolicySet(route.id, {
    staticPolicies: {
      'contractors-never-admin': `forbid(principal, action, resource) when { (!(context has user) || context.user.groups.contains("contractors")) && context.path like "/admin*" };`,
      'blocked-network': `forbid(principal, action, resource) when { !(context has ip) || context.ip.isInRange(ip("203.0.113.0/24")) };`,
      team: `permit(principal, action, resource) when { context has user && context.user.groups.contains("${route.team}") };`,
      'staff-compliant': `permit(principal, action, resource) when { context has user && context.user has email && context.user.email like "*@company.com" && context has device && context.device.state == "managed" && context.device has diskEncrypted && context.device.diskEncrypted == true };`,
      'contractors-read': `permit(principal, action, resource) when { context has user && context.user.groups.contains("contractors") && ["GET", "HEAD"].contains(context.method) };`,
    },
  });
  if (answer.type !== 'success') throw new Error(`cedar: ${JSON.stringify(answer)}`);
}
const cedarCalls: cedar.StatefulAuthorizationCall[] = [];
const cedarExpected: string[] = [];
for (let i = 0; i < CEDAR_SAMPLE; i++) {
  const input = requests[i] as PolicyInput;
  const route = routeOf[i] as number;
  if (route < 0) continue;
  const context: cedar.Context = { method: input.method, path: input.path };
  if (input.sourceIp) context.ip = { __extn: { fn: 'ip', arg: input.sourceIp } };
  if (input.user) {
    context.user = {
      id: input.user.id,
      groups: [...input.user.groups],
      ...(input.user.email ? { email: input.user.email } : {}),
    };
  }
  if (input.device) {
    context.device = {
      state: input.device.state,
      ...(input.device.posture?.diskEncrypted === undefined
        ? {}
        : { diskEncrypted: input.device.posture.diskEncrypted }),
    };
  }
  cedarExpected.push(vigil.decide(input).effect);
  cedarCalls.push({
    principal: { type: 'User', id: input.user?.id ?? 'anonymous' },
    action: { type: 'Action', id: 'access' },
    resource: { type: 'Route', id: (routes[route] as Route).id },
    context,
    preparsedPolicySetId: (routes[route] as Route).id,
    entities: [],
  });
}
let cedarMismatch = 0;
let cedarDisagree = 0;
for (let i = 0; i < cedarCalls.length; i++) {
  const answer = cedar.statefulIsAuthorized(cedarCalls[i] as cedar.StatefulAuthorizationCall);
  if (answer.type !== 'success' || answer.response.decision !== cedarExpected[i]) cedarDisagree++;
}
log(`cedar-wasm agrees with vigil on ${cedarCalls.length - cedarDisagree} of ${cedarCalls.length} requests`);
const cedarRate = throughput(
  'cedar-wasm',
  cedarCalls.length,
  (i) => {
    const answer = cedar.statefulIsAuthorized(cedarCalls[i] as cedar.StatefulAuthorizationCall);
    if (answer.type !== 'success') cedarMismatch++;
  },
  1,
);
if (cedarMismatch > 0) throw new Error(`cedar failed on ${cedarMismatch} requests`);

// ---- casbin ------------------------------------------------------------------------------
// Casbin scans every policy line per request, so like cedar-wasm it gets its fastest fair
// form: one enforcer per route (the route's domain), holding that route's five lines.
log('casbin: loading one RBAC-with-domains enforcer per route');
const CASBIN_MODEL = `
[request_definition]
r = sub, dom, obj, act, ctx

[policy_definition]
p = sub, dom, obj, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.dom == p.dom && (p.sub == "*" || g(r.sub, p.sub, r.dom)) && keyMatch(r.obj, p.obj) && regexMatch(r.act, p.act) && eval(p.cond)
`;
type CasbinEnforcer = Awaited<ReturnType<typeof newEnforcer>>;
const enforcers = new Map<number, CasbinEnforcer>();
const casbinArgs: { route: number; args: unknown[]; expected: boolean }[] = [];
for (let i = 0; i < CASBIN_SAMPLE; i++) {
  const input = requests[i] as PolicyInput;
  const route = routeOf[i] as number;
  if (route < 0) continue;
  const routeSpec = routes[route] as Route;
  let enforcer = enforcers.get(route);
  if (enforcer === undefined) {
    enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL));
    await enforcer.addNamedDomainMatchingFunc('g', Util.keyMatchFunc);
    await enforcer.addPolicies([
      ['contractors', routeSpec.id, '/admin*', '.*', 'true', 'deny'],
      ['anonymous', routeSpec.id, '/admin*', '.*', 'true', 'deny'],
      ['*', routeSpec.id, '*', '.*', "r.ctx.ip == '' || ipMatch(r.ctx.ip, '203.0.113.0/24')", 'deny'],
      [routeSpec.team, routeSpec.id, '*', '.*', 'true', 'allow'],
      [
        '*',
        routeSpec.id,
        '*',
        '.*',
        "r.ctx.domain == 'company.com' && r.ctx.managed == true && r.ctx.disk == true",
        'allow',
      ],
      ['contractors', routeSpec.id, '*', '^(GET|HEAD)$', 'true', 'allow'],
    ]);
    enforcers.set(route, enforcer);
  }
  if (input.user) {
    for (const group of input.user.groups) await enforcer.addGroupingPolicy(input.user.id, group, '*');
  }
  const email = input.user?.email ?? '';
  casbinArgs.push({
    route,
    expected: vigil.decide(input).effect === 'allow',
    args: [
      input.user?.id ?? 'anonymous',
      routeSpec.id,
      input.path,
      input.method,
      {
        ip: input.sourceIp ?? '',
        domain: email.slice(email.lastIndexOf('@') + 1),
        managed: input.device?.state === 'managed',
        disk: input.device?.posture?.diskEncrypted === true,
      },
    ],
  });
}
let casbinDisagree = 0;
for (const call of casbinArgs) {
  if ((await (enforcers.get(call.route) as CasbinEnforcer).enforce(...call.args)) !== call.expected) {
    if (casbinDisagree++ === 0) log(`first casbin disagreement: ${JSON.stringify(call)}`);
  }
}
log(`casbin agrees with vigil on ${casbinArgs.length - casbinDisagree} of ${casbinArgs.length} requests`);
globalThis.gc?.();
// Casbin answers with a promise per request; time the whole awaited sample.
const casbinStart = process.hrtime.bigint();
for (const call of casbinArgs)
  if (await (enforcers.get(call.route) as CasbinEnforcer).enforce(...call.args)) sink ^= 1;
const casbinRate = casbinArgs.length / (Number(process.hrtime.bigint() - casbinStart) / 1e9);
log(`casbin: ${Math.round(casbinRate).toLocaleString('en-US')} decisions/s (${casbinArgs.length} requests)`);

log(`(sink ${sink})`);
const round = (value: number, digits = 2) => Number(value.toFixed(digits));
process.stdout.write(
  `${JSON.stringify({
    bench: 'policy',
    metric: 'decisions/s',
    value: Math.round(vigilRate),
    p99_us: round(p99, 3),
    p99_method: `p99 over batches of ${BATCH} consecutive decisions (3 passes over ${REQUESTS} requests), per-decision mean per batch, process.hrtime.bigint`,
    p99_single_call_us: round(p99Single, 3),
    value_no_shared_rules: Math.round(uniqueRate),
    routes: ROUTES,
    rules_per_route: 5,
    requests: REQUESTS,
    peers: {
      'cedar-wasm': Math.round(cedarRate),
      casbin: Math.round(casbinRate),
      baseline: Math.round(baselineRate),
    },
    peer_samples: { 'cedar-wasm': cedarCalls.length, casbin: casbinArgs.length, baseline: REQUESTS },
    peer_disagreements: { 'cedar-wasm': cedarDisagree, casbin: casbinDisagree, baseline: disagreements },
    peer_forms: {
      'cedar-wasm': 'preparsePolicySet per route + statefulIsAuthorized, call objects built before timing',
      casbin: 'one enforcer per route (RBAC with domains, eval() ABAC matcher), awaited enforce()',
      baseline: 'hand-written closures per route behind a Map host look-up',
    },
    ratios: {
      'cedar-wasm': round(vigilRate / cedarRate),
      casbin: round(vigilRate / casbinRate),
      baseline: round(vigilRate / baselineRate, 3),
    },
  })}\n`,
);

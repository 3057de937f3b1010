import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfig } from '../config/index.ts';
import { DEFAULT_DEV_USERS } from '../identity/index.ts';
import type { Logger } from '../telemetry/index.ts';
import { type DemoApp, startDemoApp } from './demo-apps.ts';
import { type RunningServer, startServer } from './server.ts';

export interface DemoOptions {
  /** Proxy port; the admin API takes port + 1 and the dev IdP port + 2. */
  port: number;
  /** Default: {@link defaultDemoDataDir} of the port. */
  dataDir?: string;
  logger?: Logger;
}

/** The port `vigil up` listens on unless told otherwise. */
export const DEFAULT_DEMO_PORT = 8080;

/**
 * Where a demo keeps its database and keys: `./.vigil-data` on the default port,
 * `./.vigil-data/<port>` on another, so that two demos side by side never share a
 * SQLite file (inside `.vigil-data`, which .gitignore already covers).
 */
export function defaultDemoDataDir(port: number): string {
  return port === DEFAULT_DEMO_PORT ? './.vigil-data' : join('./.vigil-data', String(port));
}

/**
 * The session cookie of a demo: browsers keep cookies by host, not port, so two demos
 * on 127.0.0.1 with one cookie name would log each other out.
 */
export function demoSessionCookie(port: number): string {
  return port === DEFAULT_DEMO_PORT ? '_vigil_session' : `_vigil_session_${port}`;
}

export interface RunningDemo {
  readonly proxy: string;
  readonly admin: string;
  readonly idp: string;
  /** Absolute path of the demo's data directory (database, keys, demo-policy.yaml). */
  readonly dataDir: string;
  readonly apps: { name: string; title: string; url: string }[];
  readonly users: { name: string; password: string; groups: string[] }[];
  readonly server: RunningServer;
  close(): Promise<void>;
}

const DEMO_POLICY = `# Written by \`vigil up\` each time it starts: the demo's policy. Edit it while the
# demo runs and save: the next request is decided by it (a file that does not compile
# is reported in the log, and the last good policy keeps serving).
policies:
  - name: engineering-app
    description: Engineers only.
    rules:
      - name: engineers
        allow:
          groups: { any: [engineering] }
  - name: finance-app
    description: The finance team only; contractors never.
    rules:
      - name: no-contractors
        deny:
          groups: { any: [contractors] }
      - name: finance-team
        allow:
          groups: { any: [finance] }
`;

/**
 * `vigil up`: the whole product on one machine — embedded SQLite, the dev IdP, two demo
 * apps behind the proxy — so a person can log in as alice and be let in, or as bob and
 * see why not.
 */
export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const dataDir = resolve(options.dataDir ?? defaultDemoDataDir(options.port));
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const policyFile = join(dataDir, 'demo-policy.yaml');
  writeFileSync(policyFile, DEMO_POLICY);

  const proxy = `http://127.0.0.1:${options.port}`;
  const appSpecs = [
    { name: 'engineering', title: 'Engineering dashboard', policy: 'engineering-app' },
    { name: 'finance', title: 'Finance reports', policy: 'finance-app' },
  ];
  const apps: DemoApp[] = [];
  try {
    for (const spec of appSpecs) {
      apps.push(
        await startDemoApp({
          name: spec.name,
          title: spec.title,
          jwksUrl: `${proxy}/.vigil/jwks.json`,
          issuer: proxy,
        }),
      );
    }
    const routes = appSpecs
      .map(
        (spec, index) =>
          `  - name: ${spec.name}\n    from: ${proxy}/${spec.name}\n    to: ${apps[index]?.url}\n    policy: ${spec.policy}\n`,
      )
      .join('');
    const text = `server:
  proxy_listen: 127.0.0.1:${options.port}
  admin_listen: 127.0.0.1:${options.port + 1}
  data_dir: ${dataDir}
  public_url: ${proxy}
database:
  url: sqlite://${join(dataDir, 'vigil.db')}
session:
  cookie_name: ${demoSessionCookie(options.port)}
dev_idp:
  listen: 127.0.0.1:${options.port + 2}
policy_files: [${policyFile}]
routes:
${routes}`;
    const configFile = join(dataDir, 'vigil-up.yaml');
    writeFileSync(configFile, text);
    const loaded = parseConfig(text, configFile, {}, dataDir);
    // Watching reloads the policy file on save (and vigil-up.yaml, and on SIGHUP). The
    // config was read without environment overrides; a reload must not pick them up.
    const server = await startServer(loaded, {
      watchConfig: true,
      env: {},
      ...(options.logger ? { logger: options.logger } : {}),
    });
    return {
      proxy,
      admin: server.adminUrl,
      idp: `http://127.0.0.1:${options.port + 2}`,
      dataDir,
      apps: appSpecs.map((spec) => ({ name: spec.name, title: spec.title, url: `${proxy}/${spec.name}/` })),
      users: DEFAULT_DEV_USERS.map((user) => ({
        name: user.username,
        password: user.password,
        groups: [...user.groups],
      })),
      server,
      async close() {
        await server.close();
        await Promise.all(apps.map((app) => app.close()));
      },
    };
  } catch (error) {
    await Promise.all(apps.map((app) => app.close()));
    throw error;
  }
}

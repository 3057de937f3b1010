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
  dataDir: string;
  logger?: Logger;
}

export interface RunningDemo {
  readonly proxy: string;
  readonly admin: string;
  readonly idp: string;
  readonly apps: { name: string; title: string; url: string }[];
  readonly users: { name: string; password: string; groups: string[] }[];
  readonly server: RunningServer;
  close(): Promise<void>;
}

const DEMO_POLICY = `# Written by \`vigil up\`: the demo's policy. Edit it while the demo runs; it reloads.
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
  const dataDir = resolve(options.dataDir);
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
dev_idp:
  listen: 127.0.0.1:${options.port + 2}
policy_files: [${policyFile}]
routes:
${routes}`;
    const configFile = join(dataDir, 'vigil-up.yaml');
    writeFileSync(configFile, text);
    const loaded = parseConfig(text, configFile, {}, dataDir);
    const server = await startServer(loaded, { ...(options.logger ? { logger: options.logger } : {}) });
    return {
      proxy,
      admin: server.adminUrl,
      idp: `http://127.0.0.1:${options.port + 2}`,
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

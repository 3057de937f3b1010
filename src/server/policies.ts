import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { LoadedConfig, RouteConfig } from '../config/index.ts';
import type { ApiRoute } from '../internal/http.ts';
import { PolicyStore, type RouteSpec } from '../policy/index.ts';
import { Counter, type Logger, type Registry } from '../telemetry/index.ts';

const RELOAD_DEBOUNCE_MS = 150;

/** The route table the policy engine indexes, from vigil.yaml's routes. */
export function routeSpecs(routes: readonly RouteConfig[], configPath: string): RouteSpec[] {
  return routes.map((route, index) => {
    const from = new URL(route.from);
    return {
      name: route.name,
      host: from.hostname.toLowerCase(),
      pathPrefix: from.pathname === '' ? '/' : from.pathname,
      policy: route.policy,
      mode: route.mode,
      source: `${configPath} routes[${index}]`,
    };
  });
}

export interface ServingPolicies {
  readonly store: PolicyStore;
  readonly routes: ApiRoute[];
  /** Re-reads the policy files (and the routes of `config`); keeps the last good set on error. */
  reload(config: LoadedConfig): Promise<void>;
  close(): void;
}

/**
 * Loads the policy files named by the config and keeps them current: on a config
 * change, on SIGHUP, and when a policy file changes. A set that fails to compile is
 * logged with file:line and never replaces the one serving. At start a failure is fatal.
 */
export async function startPolicies(
  initial: LoadedConfig,
  options: {
    logger: Logger;
    metrics: Registry;
    watch: boolean;
    /** Told of every policy set that starts serving (for the audit log). */
    onLoaded?: (files: readonly string[]) => void;
  },
): Promise<ServingPolicies> {
  const reloads = new Counter({
    name: 'vigil_policy_reloads_total',
    help: 'Policy reloads by result',
    labelNames: ['result'],
    registers: [options.metrics],
  });
  const store = new PolicyStore();
  let current = initial;
  let lastError: string | null = null;
  let loadedAt = Date.now();

  const load = async (config: LoadedConfig) => {
    const error = await store.reload(
      config.config.policy_files,
      routeSpecs(config.config.routes, config.path),
    );
    if (error) {
      lastError = error.message;
      reloads.labels('error').inc();
      return error;
    }
    current = config;
    lastError = null;
    loadedAt = Date.now();
    reloads.labels('ok').inc();
    return null;
  };

  const startError = await load(initial);
  if (startError) throw startError;

  let watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const rewatch = () => {
    for (const watcher of watchers) watcher.close();
    watchers = [];
    if (!options.watch) return;
    const byFolder = new Map<string, Set<string>>();
    for (const file of current.config.policy_files) {
      const names = byFolder.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byFolder.set(dirname(file), names);
    }
    for (const [folder, names] of byFolder) {
      const watcher = watch(folder, (_event, name) => {
        if (name !== null && !names.has(name)) return;
        clearTimeout(timer);
        timer = setTimeout(() => void reload(current), RELOAD_DEBOUNCE_MS);
      });
      watcher.on('error', (error) => options.logger.warn({ err: error, folder }, 'policy watch failed'));
      watchers.push(watcher);
    }
  };

  const reload = async (config: LoadedConfig) => {
    const error = await load(config);
    if (error) {
      options.logger.error(
        { err: { code: error.code, message: error.message } },
        'policy reload failed; the last good policy keeps serving',
      );
      return;
    }
    options.logger.info({ files: config.config.policy_files.length }, 'policies loaded');
    options.onLoaded?.(config.config.policy_files);
    rewatch();
  };
  const onSignal = () => void reload(current);
  if (options.watch) process.on('SIGHUP', onSignal);
  rewatch();

  return {
    store,
    reload,
    routes: [
      {
        method: 'GET',
        path: '/api/v1/policy',
        summary: 'Policy files and routes serving, and the last reload error',
        handler: () => ({
          status: 200,
          body: {
            files: current.config.policy_files,
            routes: routeSpecs(current.config.routes, current.path),
            loaded_at: new Date(loadedAt).toISOString(),
            last_error: lastError,
          },
        }),
      },
    ],
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      process.off('SIGHUP', onSignal);
    },
  };
}

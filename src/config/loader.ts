import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { VigilError } from '../errors.ts';
import { formatProblem, type SourceProblem, YamlSource } from '../internal/yaml-source.ts';
import { configSchema, type VigilConfig } from './schema.ts';

/** A config that could not be loaded; `problems` lists every one found, located. */
export class ConfigError extends VigilError {
  readonly problems: readonly SourceProblem[];
  constructor(
    code: 'ERR_CONFIG_NOT_FOUND' | 'ERR_CONFIG_YAML' | 'ERR_CONFIG_INVALID',
    problems: SourceProblem[],
  ) {
    super(code, problems.map(formatProblem).join('\n'), { publicMessage: 'invalid configuration' });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Environment variables that override a config value, for containers and systemd units. */
export const ENV_OVERRIDES = {
  VIGIL_PROXY_LISTEN: ['server', 'proxy_listen'],
  VIGIL_ADMIN_LISTEN: ['server', 'admin_listen'],
  VIGIL_DATABASE_URL: ['database', 'url'],
  VIGIL_REDIS_URL: ['redis', 'url'],
  VIGIL_DATA_DIR: ['server', 'data_dir'],
} as const satisfies Record<string, readonly [string, string]>;

export interface LoadedConfig {
  readonly path: string;
  readonly config: Readonly<VigilConfig>;
  /** The file's text, so a reload can tell whether anything changed. */
  readonly text: string;
}

/**
 * Reads, validates and freezes a vigil.yaml. Throws ConfigError naming file:line and
 * the dotted path of every problem; never returns a partly valid config.
 */
export function loadConfig(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): LoadedConfig {
  const fullPath = resolve(path);
  let text: string;
  try {
    text = readFileSync(fullPath, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot be read';
    throw new ConfigError('ERR_CONFIG_NOT_FOUND', [
      { file: path, line: 0, path: '', message: `${reason}; pass --config PATH or create it` },
    ]);
  }
  return parseConfig(text, path, env, dirname(fullPath));
}

/** Validates config text; `file` only names it in errors, `baseDir` resolves relative paths. */
export function parseConfig(
  text: string,
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
  baseDir: string = process.cwd(),
): LoadedConfig {
  const parsed = YamlSource.parse(text, file);
  if ('problems' in parsed) throw new ConfigError('ERR_CONFIG_YAML', parsed.problems);
  const { source } = parsed;

  const raw = source.value() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('ERR_CONFIG_INVALID', [
      { file, line: 1, path: '', message: 'the top level must be a mapping of sections (server, routes, …)' },
    ]);
  }
  const overridden = applyEnvOverrides(raw as Record<string, unknown>, env);

  const result = configSchema(baseDir).safeParse(raw);
  if (!result.success) {
    const problems = source.problemsFrom(result.error.issues).map((problem) => {
      const variable = overridden.get(problem.path);
      return variable ? { ...problem, file: `environment ${variable}`, line: 0 } : problem;
    });
    throw new ConfigError('ERR_CONFIG_INVALID', problems);
  }
  return { path: resolve(baseDir, file), config: deepFreeze(result.data), text };
}

function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: Readonly<Record<string, string | undefined>>,
): Map<string, string> {
  const overridden = new Map<string, string>();
  for (const [variable, [section, key]] of Object.entries(ENV_OVERRIDES)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    const current = raw[section];
    const target = typeof current === 'object' && current !== null && !Array.isArray(current) ? current : {};
    raw[section] = { ...target, [key]: value };
    overridden.set(`${section}.${key}`, variable);
  }
  return overridden;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

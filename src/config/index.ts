export { ConfigError, ENV_OVERRIDES, type LoadedConfig, loadConfig, parseConfig } from './loader.ts';
export { configReferenceMarkdown } from './reference.ts';
export {
  configSchema,
  type DevIdpConfig,
  type IdentityProviderConfig,
  type ListenAddress,
  parseListen,
  type RouteConfig,
  Secret,
  type SessionConfig,
  type VigilConfig,
} from './schema.ts';
export { ConfigWatcher, type ReloadResult } from './watcher.ts';

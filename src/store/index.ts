export type { ChangeChannel, ChangeEvent, ChangeFeed, ChangeInput } from './change-feed.ts';
export { isUniqueViolation } from './errors.ts';
export { MIGRATION_NAMES } from './migrations.ts';
export {
  LATEST_MIGRATION,
  type OpenStoreOptions,
  openStore,
  redactUrl,
  type Store,
  type StoreDialect,
  type TryWriteResult,
} from './store.ts';
export type * from './tables.ts';

import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { type LoadedConfig, loadConfig } from './loader.ts';

export type ReloadResult =
  | { changed: boolean; config: LoadedConfig }
  | { error: Error; config: LoadedConfig };

/** Debounce so that an editor's write-then-rename counts as one change. */
const DEFAULT_DEBOUNCE_MS = 150;

/**
 * Keeps the last good config serving. On SIGHUP or a change of the file it reloads;
 * a file that fails to load is reported and changes nothing.
 */
export class ConfigWatcher {
  #current: LoadedConfig;
  readonly #path: string;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #logger: Logger | undefined;
  readonly #listeners = new Set<(config: LoadedConfig) => void>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #onSignal = () => void this.reload();
  readonly #debounceMs: number;

  constructor(
    initial: LoadedConfig,
    options: {
      env?: Readonly<Record<string, string | undefined>>;
      logger?: Logger;
      debounceMs?: number;
    } = {},
  ) {
    this.#current = initial;
    this.#path = initial.path;
    this.#env = options.env ?? process.env;
    this.#logger = options.logger;
    this.#debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  get current(): LoadedConfig {
    return this.#current;
  }

  /** Calls `listener` with every new good config. Returns the unsubscribe function. */
  onChange(listener: (config: LoadedConfig) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts watching the file (its folder, since editors replace files) and SIGHUP. */
  start(): void {
    const name = basename(this.#path);
    this.#watcher = watch(dirname(this.#path), (_event, file) => {
      if (file !== null && file !== name) return;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.reload(), this.#debounceMs);
    });
    this.#watcher.on('error', (error) => this.#logger?.warn({ err: error }, 'config watch failed'));
    process.on('SIGHUP', this.#onSignal);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
    process.off('SIGHUP', this.#onSignal);
  }

  /** Loads the file again; on error keeps the current config and returns the error. */
  reload(): ReloadResult {
    let next: LoadedConfig;
    try {
      next = loadConfig(this.#path, this.#env);
    } catch (error) {
      this.#logger?.error(
        { err: { message: (error as Error).message, code: (error as { code?: string }).code } },
        'config reload failed; the last good config keeps serving',
      );
      return { error: error as Error, config: this.#current };
    }
    if (next.text === this.#current.text) return { changed: false, config: this.#current };
    this.#current = next;
    this.#logger?.info({ path: this.#path }, 'config reloaded');
    for (const listener of this.#listeners) listener(next);
    return { changed: true, config: next };
  }
}

import type { PolicyInput } from '../policy/index.ts';
import type { Store } from '../store/index.ts';
import type { Logger } from '../telemetry/index.ts';
import { mergePosture, postureDataSchema, type SourcedPosture } from './data.ts';
import type { DeviceState } from './registry.ts';

export type PolicyDevice = NonNullable<PolicyInput['device']>;

interface Entry {
  state: DeviceState;
  /** The user who enrolled it; null for a device enrolled with a token (a shared machine). */
  owner: string | null;
  reports: SourcedPosture[];
  /** What policy sees; rebuilt only when the device or its posture changes. */
  view: PolicyDevice;
}

/**
 * Every device's state and merged posture in memory, for the request path: a lookup is
 * one map read that returns a frozen object. The change feed keeps it current on every
 * replica (enrollment, approval, revocation, posture reports); a resync reloads it all.
 */
export class DeviceInventory {
  readonly #store: Store;
  readonly #logger: Logger | undefined;
  readonly #devices = new Map<string, Entry>();
  readonly #unsubscribe: (() => void)[] = [];
  /** Bumped by every full load, so a single-device load that raced it is dropped. */
  #generation = 0;
  /** Devices that changed while a full reload was reading, when one is. */
  #changedDuringReload: Set<string> | undefined;
  /** Latest load started per device: an older read that finishes last must not win. */
  readonly #loading = new Map<string, number>();
  #loads = 0;

  private constructor(store: Store, logger: Logger | undefined) {
    this.#store = store;
    this.#logger = logger;
  }

  static async open(store: Store, options: { logger?: Logger } = {}): Promise<DeviceInventory> {
    const inventory = new DeviceInventory(store, options.logger);
    await inventory.reload();
    const refresh = (id: string | undefined) => inventory.#refresh(id);
    inventory.#unsubscribe.push(
      store.changes.subscribe('device', (event) => {
        if (event.action !== 'token-created') refresh(event.id);
      }),
      store.changes.subscribe('posture', (event) => refresh(event.id)),
      store.changes.onResync(() => {
        inventory.reload().catch((error: unknown) => inventory.#warn(error, undefined));
      }),
    );
    return inventory;
  }

  /** The device as policy sees it; undefined for an id this server never enrolled. */
  get(id: string): PolicyDevice | undefined {
    return this.#devices.get(id)?.view;
  }

  /**
   * The device as policy sees it for requests of `userId`: a device enrolled by a user
   * is theirs only; a token-enrolled device (no owner) serves whoever uses it.
   */
  getFor(id: string, userId: string): PolicyDevice | undefined {
    const entry = this.#devices.get(id);
    if (entry === undefined || (entry.owner !== null && entry.owner !== userId)) return undefined;
    return entry.view;
  }

  get size(): number {
    return this.#devices.size;
  }

  async reload(): Promise<void> {
    const generation = ++this.#generation;
    // Changes announced while the full read is under way may not be in it: load those
    // devices again once it is applied.
    const changedMeanwhile = new Set<string>();
    this.#changedDuringReload = changedMeanwhile;
    const [devices, postures] = await Promise.all([
      this.#store.db.selectFrom('devices').select(['id', 'state', 'user_id']).execute(),
      this.#store.db.selectFrom('device_posture').selectAll().execute(),
    ]);
    if (generation !== this.#generation) return;
    const reports = new Map<string, SourcedPosture[]>();
    for (const row of postures) {
      const report = parseReport(row);
      if (report === undefined) continue;
      const list = reports.get(row.device_id) ?? [];
      list.push(report);
      reports.set(row.device_id, list);
    }
    this.#devices.clear();
    for (const row of devices)
      this.#set(row.id, row.state as DeviceState, row.user_id, reports.get(row.id) ?? []);
    this.#changedDuringReload = undefined;
    for (const id of changedMeanwhile) this.#refresh(id);
  }

  #refresh(id: string | undefined): void {
    if (id === undefined) return;
    this.#changedDuringReload?.add(id);
    this.#loadOne(id).catch((error: unknown) => this.#warn(error, id));
  }

  async #loadOne(id: string): Promise<void> {
    const generation = this.#generation;
    const load = ++this.#loads;
    this.#loading.set(id, load);
    const [device, postures] = await Promise.all([
      this.#store.db
        .selectFrom('devices')
        .select(['id', 'state', 'user_id'])
        .where('id', '=', id)
        .executeTakeFirst(),
      this.#store.db.selectFrom('device_posture').selectAll().where('device_id', '=', id).execute(),
    ]);
    if (this.#loading.get(id) !== load) return;
    this.#loading.delete(id);
    if (generation !== this.#generation) return;
    if (!device) {
      this.#devices.delete(id);
      return;
    }
    const reports: SourcedPosture[] = [];
    for (const row of postures) {
      const report = parseReport(row);
      if (report !== undefined) reports.push(report);
    }
    this.#set(id, device.state as DeviceState, device.user_id, reports);
  }

  #set(id: string, state: DeviceState, owner: string | null, reports: SourcedPosture[]): void {
    const posture = mergePosture(reports);
    const view: PolicyDevice = Object.freeze(
      posture === undefined ? { id, state } : { id, state, posture: Object.freeze(posture) },
    );
    this.#devices.set(id, { state, owner, reports, view });
  }

  #warn(error: unknown, id: string | undefined): void {
    this.#logger?.warn(
      { err: error, device: id },
      'loading a changed device failed; the last known state serves',
    );
  }

  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }
}

function parseReport(row: {
  source: string;
  reported_at: number;
  data_json: string;
}): SourcedPosture | undefined {
  try {
    const data = postureDataSchema.parse(JSON.parse(row.data_json));
    return { source: row.source, reportedAt: Number(row.reported_at), data };
  } catch {
    // Rows are written validated; one that no longer parses (a schema change) is skipped.
    return undefined;
  }
}

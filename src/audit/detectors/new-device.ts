import { builtInDetector, type Detector } from '../detect.ts';

export interface NewDeviceOptions {
  /** Known (user, device) pairs, e.g. from the device inventory, so a restart does not forget them. */
  known?: Iterable<readonly [user: string, device: string]>;
  /** Users remembered at once; the least recently seen is forgotten first. */
  maxUsers?: number;
  /** Devices remembered per user. */
  maxDevicesPerUser?: number;
}

export const NEW_DEVICE_DEFAULTS = { maxUsers: 100_000, maxDevicesPerUser: 32 } as const;

/**
 * First sighting of a device for a user who was already seen with other devices: the
 * decision is flagged `new-device` and an alert keyed `user/device` is raised. A user's
 * very first device sets the baseline silently, so a fresh server does not alert on
 * everyone; seed `known` from the inventory to alert from the first request.
 */
export function newDeviceDetector(options: NewDeviceOptions = {}): Detector {
  const { maxUsers, maxDevicesPerUser } = { ...NEW_DEVICE_DEFAULTS, ...options };
  const devices = new Map<string, Set<string>>();
  const remember = (user: string, device: string) => {
    let set = devices.get(user);
    if (set) devices.delete(user);
    else set = new Set();
    devices.set(user, set);
    if (devices.size > maxUsers) {
      const oldest = devices.keys().next().value;
      if (oldest !== undefined) devices.delete(oldest);
    }
    set.add(device);
    if (set.size > maxDevicesPerUser) {
      const oldest = set.values().next().value;
      if (oldest !== undefined) set.delete(oldest);
    }
  };
  // Read once into pairs: `known` may be a one-shot iterator (a generator, map.entries()),
  // and the spec carries the same pairs to the writer's thread, where an iterator cannot go.
  const known: (readonly [string, string])[] = [];
  for (const [user, device] of options.known ?? []) {
    if (known.length >= maxUsers * maxDevicesPerUser) break;
    known.push([user, device]);
    remember(user, device);
  }
  return builtInDetector({
    name: 'new-device',
    spec: { type: 'new-device', options: { ...options, known } },
    observe(event, report) {
      if (event.kind !== 'decision' || event.user === null || event.device === null) return;
      const known = devices.get(event.user);
      const isNew = known !== undefined && !known.has(event.device);
      remember(event.user, event.device);
      if (!isNew) return;
      report.flag('new-device');
      report.alert({
        key: `${event.user}/${event.device}`,
        severity: 'medium',
        summary: `${event.user} seen with a new device ${event.device}`,
        risk: ['new-device'],
        user: event.user,
        device: event.device,
        sourceIp: event.sourceIp,
        evidence: [event.requestId],
      });
    },
  });
}

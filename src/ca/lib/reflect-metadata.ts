// @peculiar/x509 resolves its algorithm registry through tsyringe, which refuses to load
// unless `Reflect.getMetadata` exists. tsyringe reads and writes only three functions,
// so this installs those (backed by a WeakMap) when no full polyfill is present.
type MetadataKey = unknown;
type MetadataTarget = object;

interface ReflectMetadata {
  getMetadata?: (key: MetadataKey, target: MetadataTarget) => unknown;
  getOwnMetadata?: (key: MetadataKey, target: MetadataTarget) => unknown;
  defineMetadata?: (key: MetadataKey, value: unknown, target: MetadataTarget) => void;
}

const reflect = Reflect as unknown as ReflectMetadata;

if (typeof reflect.getMetadata !== 'function') {
  const store = new WeakMap<MetadataTarget, Map<MetadataKey, unknown>>();
  const own = (key: MetadataKey, target: MetadataTarget): unknown => store.get(target)?.get(key);
  reflect.getOwnMetadata = own;
  reflect.getMetadata = (key, target) => {
    // Walks the prototype chain like reflect-metadata does; chains are short (classes).
    for (let current: object | null = target; current !== null; current = Object.getPrototypeOf(current)) {
      const value = own(key, current);
      if (value !== undefined) return value;
    }
    return undefined;
  };
  reflect.defineMetadata = (key, value, target) => {
    let entries = store.get(target);
    if (!entries) {
      entries = new Map();
      store.set(target, entries);
    }
    entries.set(key, value);
  };
}

/** Deepest nesting the canonical encoder follows; audit data is shallow, so more means a bug or a cycle. */
const MAX_DEPTH = 32;

/**
 * Deterministic JSON: object keys sorted by UTF-16 code units, no whitespace, numbers and
 * strings as `JSON.stringify` writes them. For the JSON values audit events hold this is
 * the RFC 8785 (JCS) encoding, so any verifier can recompute a hash from the stored text.
 * `undefined` properties are left out, as JSON.stringify does; non-finite numbers,
 * functions, symbols, bigints and class instances are refused.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

interface Shape {
  keys: readonly string[];
  /** Kept keys in canonical order; undefined when the fast path cannot be used. */
  sorted: string[] | undefined;
}

/** Recently seen key lists: events from one producer share a few shapes. */
const shapes: Shape[] = [];
const MAX_SHAPES = 16;

function shapeOf(keys: readonly string[], omit: readonly string[]): Shape {
  for (const shape of shapes) {
    if (shape.keys.length !== keys.length) continue;
    let same = true;
    for (let index = 0; same && index < keys.length; index++) same = shape.keys[index] === keys[index];
    if (same) return shape;
  }
  // An integer-like key would be moved to the front by JS property order, so such
  // records take the general encoder.
  const sorted = keys.some((key) => /^\d+$/.test(key))
    ? undefined
    : keys.filter((key) => !omit.includes(key)).sort();
  const shape = { keys: [...keys], sorted };
  if (shapes.length >= MAX_SHAPES) shapes.pop();
  shapes.unshift(shape);
  return shape;
}

/**
 * Canonical JSON of `record` without the keys in `omit`, exactly as `canonicalJson`
 * would write it. Audit events are flat (strings, numbers, lists of strings); for those a
 * copy with keys inserted in sorted order goes through the native `JSON.stringify`,
 * several times faster than the general encoder. Nested records take the general one.
 */
export function canonicalRecord(record: Record<string, unknown>, omit: readonly string[]): string {
  const keys = Object.keys(record);
  const shape = Object.getPrototypeOf(record) === Object.prototype ? shapeOf(keys, omit) : undefined;
  let flat = shape?.sorted !== undefined;
  for (let index = 0; flat && index < keys.length; index++) {
    flat = isFlatValue(record[keys[index] as string]);
  }
  if (!flat || !shape?.sorted) {
    const copy: Record<string, unknown> = {};
    for (const key of keys) if (!omit.includes(key)) copy[key] = record[key];
    return encode(copy, 0);
  }
  const copy: Record<string, unknown> = {};
  for (const key of shape.sorted) copy[key] = record[key];
  return JSON.stringify(copy);
}

function isFlatValue(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (!Array.isArray(value) || value.length > 1024) return false;
      for (const item of value) {
        if (typeof item === 'string' || typeof item === 'boolean' || item === null) continue;
        if (typeof item === 'number' && Number.isFinite(item)) continue;
        return false;
      }
      return true;
    }
    default:
      return false;
  }
}

function encode(value: unknown, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot encode a non-finite number');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
  if (depth >= MAX_DEPTH) throw new TypeError(`canonical JSON nesting deeper than ${MAX_DEPTH}`);
  if (Array.isArray(value)) {
    let out = '[';
    for (let index = 0; index < value.length; index++) {
      if (index > 0) out += ',';
      const item: unknown = value[index];
      out += item === undefined ? 'null' : encode(item, depth + 1);
    }
    return `${out}]`;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    throw new TypeError('canonical JSON encodes plain objects only');
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const field = record[key];
    if (field === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(key)}:${encode(field, depth + 1)}`;
  }
  return `${out}}`;
}

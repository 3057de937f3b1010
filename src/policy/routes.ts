interface Routed {
  readonly host: string;
  readonly pathPrefix: string;
}

/** Hosts with more prefixes than this get a hash look-up per path segment instead of a scan. */
const SCAN_LIMIT = 8;

interface HostTable<T> {
  /** Longest prefix first. */
  readonly ordered: readonly T[];
  readonly byPrefix: ReadonlyMap<string, T> | undefined;
}

/**
 * Host + longest path prefix, matched on segment boundaries: "/wiki" serves "/wiki" and
 * "/wiki/page" but not "/wikipedia". A look-up is one hash probe for the host and, per
 * host, a scan of a few prefixes or one probe per path segment.
 */
export class RouteIndex<T extends Routed> {
  readonly #hosts = new Map<string, HostTable<T>>();

  constructor(routes: readonly T[]) {
    const grouped = new Map<string, T[]>();
    for (const route of routes) {
      const list = grouped.get(route.host) ?? [];
      list.push(route);
      grouped.set(route.host, list);
    }
    for (const [host, list] of grouped) {
      const ordered = [...list].sort((a, b) => b.pathPrefix.length - a.pathPrefix.length);
      const byPrefix =
        ordered.length > SCAN_LIMIT ? new Map(ordered.map((route) => [route.pathPrefix, route])) : undefined;
      this.#hosts.set(host, { ordered, byPrefix });
    }
  }

  lookup(host: string, path: string): T | undefined {
    let table = this.#hosts.get(host);
    if (table === undefined) {
      // The proxy should pass a bare lower-case host; be forgiving about case and port.
      const normalized = host.toLowerCase().replace(/:\d+$/, '');
      if (normalized === host) return undefined;
      table = this.#hosts.get(normalized);
      if (table === undefined) return undefined;
    }
    if (table.byPrefix !== undefined) return byPrefix(table.byPrefix, path);
    const ordered = table.ordered;
    for (let index = 0; index < ordered.length; index++) {
      const route = ordered[index] as T;
      const prefix = route.pathPrefix;
      if (prefix === '/') return route;
      if (
        path.startsWith(prefix) &&
        (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)
      ) {
        return route;
      }
    }
    return undefined;
  }
}

function byPrefix<T>(table: ReadonlyMap<string, T>, path: string): T | undefined {
  let end = path.length;
  while (end > 0) {
    const found = table.get(end === path.length ? path : path.slice(0, end));
    if (found !== undefined) return found;
    end = path.lastIndexOf('/', end - 1);
  }
  return table.get('/');
}

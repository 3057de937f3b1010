/**
 * A small browser for login tests: a cookie jar (by host, like browsers: ports share
 * cookies; Secure is honoured loosely since tests speak http on loopback) and manual
 * redirect following that records every URL visited.
 */
export class CookieJar {
  readonly #cookies = new Map<string, Map<string, { value: string; path: string }>>();

  store(url: URL, response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const index = pair.indexOf('=');
      if (index <= 0) continue;
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      let path = '/';
      let remove = false;
      for (const attribute of attributes) {
        const [key = '', val = ''] = attribute.split('=').map((part) => part.trim());
        if (key.toLowerCase() === 'path') path = val || '/';
        if (key.toLowerCase() === 'max-age' && Number(val) <= 0) remove = true;
        if (key.toLowerCase() === 'expires' && Date.parse(val) <= Date.now()) remove = true;
      }
      const host = this.#host(url);
      if (remove) {
        this.#cookies.get(host)?.delete(name);
        continue;
      }
      if (!this.#cookies.has(host)) this.#cookies.set(host, new Map());
      this.#cookies.get(host)?.set(name, { value, path });
    }
  }

  header(url: URL): string | undefined {
    const cookies = this.#cookies.get(this.#host(url));
    if (!cookies) return undefined;
    const pairs = [...cookies]
      .filter(([, cookie]) => url.pathname.startsWith(cookie.path))
      .map(([name, cookie]) => `${name}=${cookie.value}`);
    return pairs.length > 0 ? pairs.join('; ') : undefined;
  }

  get(url: URL | string, name: string): string | undefined {
    return this.#cookies.get(this.#host(new URL(url)))?.get(name)?.value;
  }

  set(url: URL | string, name: string, value: string, path = '/'): void {
    const host = this.#host(new URL(url));
    if (!this.#cookies.has(host)) this.#cookies.set(host, new Map());
    this.#cookies.get(host)?.set(name, { value, path });
  }

  delete(url: URL | string, name: string): void {
    this.#cookies.get(this.#host(new URL(url)))?.delete(name);
  }

  #host(url: URL): string {
    return url.hostname;
  }
}

export interface Visit {
  url: URL;
  status: number;
  response: Response;
  body: string;
}

export class Browser {
  readonly jar = new CookieJar();
  /** An undici dispatcher for every request (a private CA, a client certificate). */
  readonly #dispatcher: unknown;

  constructor(options: { dispatcher?: unknown } = {}) {
    this.#dispatcher = options.dispatcher;
  }
  /** Every URL requested, in order (redirect hops included). */
  readonly visited: URL[] = [];

  /** One request, no redirect following; cookies sent and stored. */
  async request(url: string | URL, init: RequestInit = {}): Promise<Visit> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    // Like a browser: ask for HTML, so that Vigil answers 401s with a login redirect.
    if (!headers.has('accept')) headers.set('accept', 'text/html,application/xhtml+xml,*/*;q=0.8');
    const cookie = this.jar.header(target);
    if (cookie) headers.set('cookie', cookie);
    this.visited.push(target);
    const response = await fetch(target, {
      ...init,
      ...(this.#dispatcher !== undefined ? ({ dispatcher: this.#dispatcher } as RequestInit) : {}),
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    this.jar.store(target, response);
    return { url: target, status: response.status, response, body: await response.text() };
  }

  /** Requests and follows redirects (GET after each hop), at most `maxHops`. */
  async follow(url: string | URL, init: RequestInit = {}, maxHops = 20): Promise<Visit> {
    let visit = await this.request(url, init);
    for (let hop = 0; hop < maxHops; hop++) {
      const location = visit.response.headers.get('location');
      if (visit.status < 300 || visit.status >= 400 || !location) return visit;
      visit = await this.request(new URL(location, visit.url));
    }
    throw new Error(`more than ${maxHops} redirects from ${String(url)}`);
  }

  /**
   * Starts at `loginUrl`, fills the dev IdP's form with the user's credentials and
   * follows through consent (none here) and the callback; returns the last response.
   */
  async login(loginUrl: string | URL, username: string, password = 'demo'): Promise<Visit> {
    const form = await this.follow(loginUrl);
    if (form.status !== 200)
      throw new Error(`expected the login form, got ${form.status} at ${form.url}: ${form.body}`);
    return this.submitLogin(form, username, password);
  }

  /** Posts the dev IdP's login form found in `form` and follows the redirects after it. */
  async submitLogin(form: Visit, username: string, password: string): Promise<Visit> {
    const action = /<form method="post" action="([^"]+)"/.exec(form.body)?.[1];
    if (!action) throw new Error(`no login form at ${form.url}: ${form.body.slice(0, 200)}`);
    return this.follow(new URL(action.replaceAll('&amp;', '&'), form.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username, password }).toString(),
    });
  }
}

/** A TCP port free right now on 127.0.0.1 (for configs that must name it before start). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

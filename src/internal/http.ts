import type { IncomingMessage, ServerResponse } from 'node:http';
import { VigilError } from '../errors.ts';

/** Largest JSON body the admin API reads; larger bodies get 413 before parsing. */
export const DEFAULT_JSON_BODY_LIMIT = 1024 * 1024;

export interface ApiRequest {
  method: string;
  path: string;
  params: Readonly<Record<string, string>>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Reads and parses the JSON body (once), refusing oversized or malformed input. */
  json(): Promise<unknown>;
  /** Who is calling, set by the admin authentication. */
  principal: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface ApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** Path with `:name` parameters, e.g. `/api/v1/sessions/:id`. */
  path: string;
  /** One line for the OpenAPI document. */
  summary: string;
  handler(request: ApiRequest): Promise<ApiResponse> | ApiResponse;
}

interface CompiledRoute {
  route: ApiRoute;
  pattern: RegExp;
  names: string[];
}

/** Matches admin API routes by method and path; routes are few, so a list suffices. */
export class ApiRouter {
  readonly #routes: CompiledRoute[] = [];

  add(...routes: ApiRoute[]): this {
    for (const route of routes) {
      const names: string[] = [];
      const source = route.path
        .split('/')
        .map((segment) => {
          if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          names.push(segment.slice(1));
          return '([^/]+)';
        })
        .join('/');
      this.#routes.push({ route, pattern: new RegExp(`^${source}$`), names });
    }
    return this;
  }

  get routes(): readonly ApiRoute[] {
    return this.#routes.map((compiled) => compiled.route);
  }

  /** The route for a request, `method-not-allowed` when only the path matches, or undefined. */
  match(
    method: string,
    path: string,
  ): { route: ApiRoute; params: Record<string, string> } | 'method-not-allowed' | undefined {
    let pathMatched = false;
    for (const { route, pattern, names } of this.#routes) {
      const found = pattern.exec(path);
      if (!found) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      names.forEach((name, index) => {
        params[name] = decodeURIComponent(found[index + 1] ?? '');
      });
      return { route, params };
    }
    return pathMatched ? 'method-not-allowed' : undefined;
  }
}

/** Reads a request body up to `limit` bytes; rejects with 413 beyond it. */
export async function readBody(request: IncomingMessage, limit = DEFAULT_JSON_BODY_LIMIT): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > limit) throw bodyTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      request.destroy();
      throw bodyTooLarge(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function readJson(request: IncomingMessage, limit = DEFAULT_JSON_BODY_LIMIT): Promise<unknown> {
  const type = request.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new VigilError('ERR_HTTP_BAD_REQUEST', 'request body must be application/json', {
      status: 415,
      publicMessage: 'content-type must be application/json',
    });
  }
  const body = await readBody(request, limit);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new VigilError('ERR_HTTP_BAD_REQUEST', 'request body is not valid JSON', {
      status: 400,
      publicMessage: 'request body is not valid JSON',
    });
  }
}

function bodyTooLarge(limit: number): VigilError {
  return new VigilError('ERR_HTTP_BODY_TOO_LARGE', `request body over ${limit} bytes`, {
    status: 413,
    publicMessage: `request body must be at most ${limit} bytes`,
  });
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  response.end(text);
}

/** A 400 whose message is safe to show: it names what is wrong with the request. */
export function badRequest(message: string): VigilError {
  return new VigilError('ERR_HTTP_BAD_REQUEST', message, { status: 400, publicMessage: message });
}

import type { ApiRoute } from '../internal/http.ts';
import { VERSION } from './version.ts';

/** OpenAPI 3.1 document of the admin API, built from the routes actually mounted. */
export function openApiDocument(routes: readonly ApiRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([a-zA-Z_]+)/g, '{$1}');
    const parameters = [...route.path.matchAll(/:([a-zA-Z_]+)/g)].map((match) => ({
      name: match[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = {
      summary: route.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      security: [{ adminToken: [] }],
      responses: {
        '200': { description: 'OK', content: { 'application/json': {} } },
        '401': { description: 'Missing or invalid admin token' },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Vigil admin API', version: VERSION },
    components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}

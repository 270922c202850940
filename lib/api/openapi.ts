/** The OpenAPI 3.1 document of the REST API, built from the route table and its JSON schemas (SPEC.md §8). */
import { VERSION } from '../version.js';
import { ROUTES } from './routes.js';

/** The OpenAPI document of this version of noise-cfg (its `info.version` is VERSION). */
export function buildOpenApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    const params = route.params as { properties?: Record<string, object> } | undefined;
    const query = route.query as { properties?: Record<string, object> } | undefined;
    const operation: Record<string, unknown> = {
      operationId: route.name,
      summary: route.summary,
      ...(route.isAuthenticated ? {} : { security: [] }),
      ...(params?.properties || query?.properties ? {
        parameters: [
          ...Object.entries(params?.properties ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
          ...Object.entries(query?.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
        ],
      } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
      responses: Object.fromEntries(Object.entries(route.responses).map(([status, response]) => [status, {
        description: response.description,
        ...(response.schema ? { content: { [response.contentType ?? 'application/json']: { schema: response.schema } } } : {}),
        ...(response.events ? { 'x-events': response.events } : {}),
      }])),
    };
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'noise-cfg REST API',
      version: VERSION,
      description: 'Create and follow update tasks. Authenticate with `Authorization: Bearer <admin token>` (DATA_DIR/admin.token).',
    },
    components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } },
    security: [{ adminToken: [] }],
    paths,
  };
}

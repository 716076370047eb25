import { readFileSync } from 'node:fs';
import { apiRoutes } from './index.js';
import { buildOpenApiDocument } from './openapi.js';

const packageJson = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { version: string };

/** Builds the OpenAPI document of the HTTP API, as `GET /v1/openapi.json` serves it. */
export function buildApiDocument() {
  return buildOpenApiDocument(apiRoutes, {
    title: 'webhook-deliverator HTTP API',
    version: packageJson.version,
    description:
      'Publish events and manage the receivers that get them as signed webhooks. Every error response has the body `{"error": {"code", "message", "request_id"}}`. Listings return pages: pass the `next_after` of one page as `after` to read the next, until it is null.',
  });
}

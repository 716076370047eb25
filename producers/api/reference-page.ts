import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

/** Path of the API reference page. */
export const API_REFERENCE_PATH = '/docs';

const require = createRequire(import.meta.url);
const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

/** The Swagger UI files the page loads, with their content types. */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

function pageHtml(basePath: string): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Webhook API reference</title>
  <link rel="icon" type="image/png" href="${basePath}/assets/favicon-32x32.png">
  <link rel="stylesheet" href="${basePath}/assets/swagger-ui.css">
</head>
<body>
  <div id="reference"></div>
  <script src="${basePath}/assets/swagger-ui-bundle.js"></script>
  <script src="${basePath}/init.js"></script>
</body>
</html>
`;
}

// validatorUrl null keeps Swagger UI from sending the document to its
// public validator, so the page makes no request beyond this server.
function initScript(basePath: string): string {
  return `window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(`${basePath}/openapi.json`)},
  dom_id: '#reference',
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
`;
}

/**
 * Serves the API reference (Swagger UI from the `swagger-ui-dist` package,
 * with no third-party requests) at `basePath`, and the OpenAPI document it
 * renders at `<basePath>/openapi.json`. Both are public, because the document
 * contains the contract and no data, and calling a route still needs the API token.
 */
export function registerReferencePage(
  app: FastifyInstance,
  options: { basePath: string; document: () => unknown },
) {
  const base = options.basePath.replace(/\/+$/, '');
  app.get(base, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(pageHtml(base)),
  );
  app.get(`${base}/init.js`, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(initScript(base)),
  );
  app.get(`${base}/openapi.json`, async (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(options.document()),
  );
  app.get<{ Params: { file: string } }>(`${base}/assets/:file`, async (request, reply) => {
    const type = ASSETS[request.params.file];
    if (type === undefined) {
      return reply.callNotFound();
    }
    const body = await readFile(path.join(SWAGGER_UI_DIR, request.params.file));
    return reply
      .type(type)
      .header('cache-control', 'public, max-age=86400')
      .send(body);
  });
}

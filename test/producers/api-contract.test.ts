import { readFile } from 'node:fs/promises';
import { validate } from '@hyperjump/json-schema/openapi-3-1';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { buildApiDocument } from '../../producers/api/contract/document.js';
import { errorResponse } from '../../producers/api/contract/errors.js';
import { apiRoutes } from '../../producers/api/contract/index.js';
import { errorStatuses, openApiPath } from '../../producers/api/contract/openapi.js';
import { DOCUMENTED_RECEIVER_BOUNDS } from '../../producers/api/contract/receivers.js';
import { registeredRoutes } from '../../producers/api/contract/server.js';
import {
  MAX_DESCRIPTION_LENGTH,
  MAX_IN_FLIGHT,
  MAX_NAME_LENGTH,
  MAX_RATE_LIMIT_PER_SECOND,
  MAX_SUBSCRIPTIONS,
} from '../../producers/receivers.js';
import { OPENAPI_FILE, renderApiDocument } from '../../scripts/openapi.js';
import { sendRaw } from '../helpers/raw-request.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: RunningSystem;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { dispatch: false, delivery: false });
});

afterAll(async () => {
  await system?.stop();
  await env?.dispose();
});

type JsonObject = Record<string, any>;

function operations(document: JsonObject): [string, string, JsonObject][] {
  return Object.entries(document.paths as JsonObject).flatMap(([path, item]) =>
    Object.entries(item as JsonObject).map(([method, operation]) => [method, path, operation as JsonObject] as [string, string, JsonObject]),
  );
}

function collectRefs(value: unknown, into: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const item of value) collectRefs(item, into);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string') into.push(item);
      else collectRefs(item, into);
    }
  }
  return into;
}

describe('route coverage', () => {
  test('every /v1 route has a declaration', () => {
    const bare = registeredRoutes(system.api.app)
      .filter((route) => route.url.startsWith('/v1/') && route.method !== 'HEAD')
      .filter((route) => route.operationId === undefined)
      .map((route) => `${route.method} ${route.url}`);
    // A route listed here was registered with app.get/post/...; declare it
    // in producers/api/contract/ and register it with implementRoute.
    expect(bare).toEqual([]);
  });

  test('every declaration has a handler', () => {
    const implemented = new Set(
      registeredRoutes(system.api.app)
        .filter((route) => route.operationId !== undefined)
        .map((route) => `${route.operationId} ${route.method} ${route.url}`),
    );
    const missing = apiRoutes
      .map((route) => `${route.operationId} ${route.method} ${route.path}`)
      .filter((key) => !implemented.has(key));
    expect(missing).toEqual([]);
  });

  test('operationIds are unique', () => {
    const ids = apiRoutes.map((route) => route.operationId);
    expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
  });

  test('method and path pairs are unique', () => {
    const keys = apiRoutes.map((route) => `${route.method} ${route.path}`);
    expect(keys.filter((key, index) => keys.indexOf(key) !== index)).toEqual([]);
  });
});

describe('OpenAPI document', () => {
  test('checked-in file matches routes', async () => {
    const stored = await readFile(OPENAPI_FILE, 'utf8');
    // On a failure, run `npm run openapi` and commit docs/openapi.json.
    expect(stored === renderApiDocument(), 'docs/openapi.json is stale; run npm run openapi').toBe(true);
  });

  test('served document matches routes', async () => {
    const response = await system.request('GET', '/v1/openapi.json');
    expect(response.status).toBe(200);
    expect(response.body).toEqual(JSON.parse(JSON.stringify(buildApiDocument())));
  });

  test('is valid OpenAPI 3.1', async () => {
    // The validator has the OpenAPI meta-schemas built in; a fetch would
    // mean that it reached for a schema over the network.
    const noFetch = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('no network in this test'));
    try {
      const output = await validate(
        'https://spec.openapis.org/oas/3.1/schema-base',
        JSON.parse(JSON.stringify(buildApiDocument())),
        'BASIC',
      );
      expect(output.valid ? [] : output.errors).toEqual([]);
      expect(output.valid).toBe(true);
      expect(noFetch).not.toHaveBeenCalled();
    } finally {
      noFetch.mockRestore();
    }
  });

  test('every $ref resolves to a component', () => {
    const document = buildApiDocument() as JsonObject;
    const refs = collectRefs(document);
    expect(refs.length).toBeGreaterThan(0);
    const unresolved = refs.filter((ref) => {
      const match = /^#\/components\/schemas\/(.+)$/.exec(ref);
      return match === null || document.components.schemas[match[1]!] === undefined;
    });
    expect(unresolved).toEqual([]);
  });

  test('lists every declared route', () => {
    const document = buildApiDocument() as JsonObject;
    const listed = operations(document).map(([method, path, operation]) => `${operation.operationId} ${method} ${path}`);
    const declared = apiRoutes.map(
      (route) => `${route.operationId} ${route.method.toLowerCase()} ${openApiPath(route.path)}`,
    );
    expect(listed.sort()).toEqual(declared.sort());
  });

  test('error responses use Error component', () => {
    const document = buildApiDocument() as JsonObject;
    const wrong: string[] = [];
    for (const [method, path, operation] of operations(document)) {
      const statuses = Object.keys(operation.responses).filter((status) => Number(status) >= 400);
      for (const required of ['401', '500']) {
        if (!statuses.includes(required)) wrong.push(`${method} ${path}: no ${required}`);
      }
      for (const status of statuses) {
        const schema = operation.responses[status].content?.['application/json']?.schema;
        if (schema?.$ref !== '#/components/schemas/Error') wrong.push(`${method} ${path} ${status}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('routes with input document 400', () => {
    const missing = apiRoutes
      .filter((route) => 'params' in route || 'query' in route || 'body' in route || 'headers' in route)
      .filter((route) => !errorStatuses(route).includes(400))
      .map((route) => route.operationId);
    expect(missing).toEqual([]);
  });

  test('listings document limit and after', () => {
    const document = buildApiDocument() as JsonObject;
    const listReceivers = document.paths['/v1/receivers'].get;
    const names = listReceivers.parameters.map((parameter: JsonObject) => `${parameter.in}:${parameter.name}`);
    expect(names).toEqual(['query:limit', 'query:after']);
    const page = listReceivers.responses['200'].content['application/json'].schema;
    expect(page.required).toContain('next_after');
  });

  test('publish documents Idempotency-Key', () => {
    const document = buildApiDocument() as JsonObject;
    const publish = document.paths['/v1/events'].post;
    const header = publish.parameters.find((parameter: JsonObject) => parameter.name === 'Idempotency-Key');
    expect(header.in).toBe('header');
    expect(header.required).toBe(false);
    expect(header.schema.pattern).toBe('^[\\x20-\\x7e]{1,255}$');
    expect(publish.responses['202'].headers['Idempotent-Replayed'].schema).toEqual({
      type: 'string',
      const: 'true',
    });
    expect(Object.keys(publish.responses)).toEqual(
      expect.arrayContaining(['202', '400', '401', '409', '413', '415', '422', '500']),
    );
  });

  test('documented receiver bounds match service', () => {
    expect(DOCUMENTED_RECEIVER_BOUNDS).toEqual({
      maxNameLength: MAX_NAME_LENGTH,
      maxDescriptionLength: MAX_DESCRIPTION_LENGTH,
      maxSubscriptions: MAX_SUBSCRIPTIONS,
      maxRateLimitPerSecond: MAX_RATE_LIMIT_PER_SECOND,
      maxInFlight: MAX_IN_FLIGHT,
    });
  });
});

describe('error shape on every error path', () => {
  test.each([
    ['GET', '/v1/no-such-route', {}, undefined, 404, 'not_found'],
    ['DELETE', '/v1/events', {}, undefined, 404, 'not_found'],
    ['GET', '/v1/receivers/%E0%A4%A', {}, undefined, 400, 'invalid_request'],
    ['GET', '/v1/receivers?limit=abc', {}, undefined, 400, 'invalid_request'],
    ['POST', '/v1/events', { 'content-type': 'application/json' }, '{"event_class"', 400, 'invalid_request'],
    ['POST', '/v1/events', { 'content-type': 'text/plain' }, '{}', 415, 'unsupported_media_type'],
    ['POST', '/v1/events', { 'content-type': 'application/xml' }, '<a/>', 415, 'unsupported_media_type'],
    [
      'POST',
      '/v1/events',
      { 'content-type': 'application/json', 'idempotency-key': 'é' },
      '{"event_class":"a.b","data":1}',
      400,
      'invalid_request',
    ],
  ])('%s %s gets the error shape', async (method, path, headers, body, status, code) => {
    const response = await sendRaw(system.api.url, method, path, { headers, body });
    expect(response.status).toBe(status);
    const parsed = errorResponse.strict().safeParse(response.body);
    expect(parsed.success, response.text).toBe(true);
    expect(response.body.error.code).toBe(code);
    expect(response.body.error.request_id).not.toBe('');
  });

  test('bad percent-escape names the URL', async () => {
    const response = await sendRaw(system.api.url, 'GET', '/v1/receivers/%E0%A4%A');
    expect(response.body.error.message).toBe(
      'URL: "/v1/receivers/%E0%A4%A" has a percent-escape that is not UTF-8',
    );
  });

  test('bad Idempotency-Key names the header', async () => {
    const response = await sendRaw(system.api.url, 'POST', '/v1/events', {
      headers: { 'content-type': 'application/json', 'idempotency-key': 'x'.repeat(256) },
      body: '{"event_class":"a.b","data":1}',
    });
    expect(response.body.error.message).toBe(
      'Idempotency-Key: must be 1 to 255 printable ASCII characters, got 256 characters',
    );
  });
});

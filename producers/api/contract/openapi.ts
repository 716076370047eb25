import { z } from 'zod';
import { ERROR_STATUS_DESCRIPTIONS, errorResponse } from './errors.js';
import { isBodyRequired, type RouteSpec } from './route.js';

type JsonSchema = Record<string, unknown>;

export type OpenApiInfo = {
  title: string;
  version: string;
  description?: string;
};

/** Returns the statuses of a route's error responses: its own plus those implied by its shape. */
export function errorStatuses(route: RouteSpec): number[] {
  const statuses = new Set<number>([401, 500, ...route.errors]);
  if (route.params || route.query || route.headers || route.body) statuses.add(400);
  if (route.body) {
    statuses.add(413);
    statuses.add(415);
  }
  return [...statuses].sort((a, b) => a - b);
}

/** Converts Fastify's `/v1/receivers/:id` to OpenAPI's `/v1/receivers/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * Collects the JSON Schemas of a document. Schemas with a zod `id`, set with
 * `.meta({ id })`, become components that are referenced with `$ref`. One id
 * must convert to the same JSON Schema wherever it is used.
 */
class SchemaCollector {
  readonly components: Record<string, JsonSchema> = {};

  convert(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
    const converted = z.toJSONSchema(schema, {
      target: 'draft-2020-12',
      io,
      unrepresentable: 'throw',
      override: ({ jsonSchema }) => tidy(jsonSchema as JsonSchema, io),
    }) as JsonSchema;
    // zod refers to shared schemas under `$defs`; they become components.
    const relinked = JSON.parse(
      JSON.stringify(converted).replaceAll('"#/$defs/', '"#/components/schemas/'),
    ) as JsonSchema;
    const { $schema: _dialect, $defs, ...rest } = relinked;
    for (const [id, definition] of Object.entries((($defs ?? {}) as Record<string, JsonSchema>))) {
      this.add(id, definition);
    }
    const id = z.globalRegistry.get(schema)?.id;
    if (typeof id === 'string' && rest.$ref === undefined) {
      this.add(id, rest);
      return { $ref: `#/components/schemas/${id}` };
    }
    return rest;
  }

  private add(id: string, definition: JsonSchema) {
    const existing = this.components[id];
    if (existing && JSON.stringify(existing) !== JSON.stringify(definition)) {
      throw new Error(
        `schema component "${id}" converts to two different JSON Schemas; give the request and response forms different ids`,
      );
    }
    this.components[id] = definition;
  }
}

/**
 * Removes what zod adds for its own checks but a reader does not need: the
 * regular expression behind a `uuid` or `date-time` format, and the safe
 * integer bounds of every `z.int()`. Response objects stay open to new
 * fields, so that a client that validates responses keeps working when a
 * later version adds one.
 */
function tidy(schema: JsonSchema, io: 'input' | 'output') {
  if (io === 'output' && schema.additionalProperties === false) delete schema.additionalProperties;
  if (schema.format === 'uuid' || schema.format === 'date-time') delete schema.pattern;
  if (schema.minimum === Number.MIN_SAFE_INTEGER) delete schema.minimum;
  if (schema.maximum === Number.MAX_SAFE_INTEGER) delete schema.maximum;
}

function parameters(
  collector: SchemaCollector,
  location: 'path' | 'query' | 'header',
  schema: z.ZodObject | undefined,
) {
  if (!schema) return [];
  const converted = collector.convert(schema, 'input');
  const properties = (converted.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((converted.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: location,
      required: location === 'path' || required.has(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

function operation(collector: SchemaCollector, route: RouteSpec) {
  const responses: Record<string, unknown> = {};
  const success = route.response;
  responses[String(success.status)] = {
    description: success.description,
    ...(success.headers
      ? {
          headers: Object.fromEntries(
            Object.entries(success.headers).map(([name, header]) => [
              name,
              { description: header.description, schema: collector.convert(header.schema, 'output') },
            ]),
          ),
        }
      : {}),
    ...(success.schema
      ? { content: { 'application/json': { schema: collector.convert(success.schema, 'output') } } }
      : {}),
  };
  const errorSchema = collector.convert(errorResponse, 'output');
  for (const status of errorStatuses(route)) {
    responses[String(status)] = {
      description: ERROR_STATUS_DESCRIPTIONS[status] ?? 'Error.',
      content: { 'application/json': { schema: errorSchema } },
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description === undefined ? {} : { description: route.description }),
    tags: [...route.tags],
    parameters: [
      ...parameters(collector, 'path', route.params),
      ...parameters(collector, 'query', route.query),
      ...parameters(collector, 'header', route.headers),
    ],
    ...(route.body
      ? {
          requestBody: {
            required: isBodyRequired(route),
            content: { 'application/json': { schema: collector.convert(route.body, 'input') } },
          },
        }
      : {}),
    responses,
  };
}

/** Builds the OpenAPI 3.1 document of the given routes. */
export function buildOpenApiDocument(routes: readonly RouteSpec[], info: OpenApiInfo) {
  const collector = new SchemaCollector();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    const method = route.method.toLowerCase();
    if (item[method]) throw new Error(`two routes declare ${route.method} ${route.path}`);
    item[method] = operation(collector, route);
  }
  const tags = [...new Set(routes.flatMap((route) => route.tags))].sort();
  return {
    openapi: '3.1.0',
    info,
    tags: tags.map((name) => ({ name })),
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      schemas: Object.fromEntries(
        Object.entries(collector.components).sort(([a], [b]) => a.localeCompare(b)),
      ),
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description:
            'The API_TOKEN of the server, as `Authorization: Bearer <API_TOKEN>`. A server without API_TOKEN checks nothing.',
        },
      },
    },
  };
}

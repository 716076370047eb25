import type { z } from 'zod';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Success statuses that a route may declare. */
export type SuccessStatus = 200 | 201 | 202 | 204;

/**
 * Error statuses that a handler produces itself. The OpenAPI generator adds
 * the ones that follow from the route's shape: 400 for any input, 413 and
 * 415 for a body, 401 and 500 for every route.
 */
export type RouteErrorStatus = 404 | 409 | 422 | 503 | 504;

/** A response header, such as `Idempotent-Replayed`. */
export interface ResponseHeaderSpec {
  description: string;
  schema: z.ZodType;
}

/**
 * One HTTP route of the API: the single declaration from which the server
 * validates requests, the OpenAPI document is generated and the typed client
 * is built. Every schema names fields with their JSON names.
 */
export interface RouteSpec {
  method: HttpMethod;
  /** Fastify path syntax, such as `/v1/receivers/:id`. */
  path: `/v1/${string}`;
  /** Unique camelCase name; it is also the client's method name. */
  operationId: string;
  summary: string;
  description?: string;
  tags: readonly string[];
  /** Path parameters; its keys must equal the `:name` segments of `path`. */
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** Request headers, keyed by their canonical spelling (`Idempotency-Key`). */
  headers?: z.ZodObject;
  body?: z.ZodType;
  /** False when the body may be left out; true by default when `body` is set. */
  bodyRequired?: boolean;
  response: {
    status: SuccessStatus;
    description: string;
    /** Absent for 204 No Content. */
    schema?: z.ZodType;
    headers?: Readonly<Record<string, ResponseHeaderSpec>>;
  };
  errors: readonly RouteErrorStatus[];
}

/** Names of the `:name` segments of a Fastify path, in order. */
export function pathParameterNames(path: string): string[] {
  return path
    .split('/')
    .filter((segment) => segment.startsWith(':'))
    .map((segment) => segment.slice(1));
}

/**
 * Declares a route and checks the parts that types cannot: that the path
 * parameters and the params schema agree, and that 204 has no body schema.
 */
export function defineRoute<const R extends RouteSpec>(route: R): R {
  const inPath = pathParameterNames(route.path).sort();
  const inSchema = Object.keys(route.params?.shape ?? {}).sort();
  if (inPath.join(',') !== inSchema.join(',')) {
    throw new Error(
      `route ${route.operationId}: path ${route.path} has parameters [${inPath.join(', ')}] but its params schema has [${inSchema.join(', ')}]`,
    );
  }
  if ((route.response.status === 204) !== (route.response.schema === undefined)) {
    throw new Error(
      `route ${route.operationId}: a 204 response must have no schema and any other status must have one`,
    );
  }
  return route;
}

/** Whether a request to the route must carry a body. */
export function isBodyRequired(route: RouteSpec): boolean {
  return route.body !== undefined && route.bodyRequired !== false;
}

/** The client's input for one route: only the parts that the route declares. */
export type RouteInput<R extends RouteSpec> = (R['params'] extends z.ZodObject
  ? { params: z.input<R['params']> }
  : unknown) &
  (R['query'] extends z.ZodObject ? { query?: z.input<R['query']> } : unknown) &
  (R['headers'] extends z.ZodObject ? { headers?: z.input<R['headers']> } : unknown) &
  (R['body'] extends z.ZodType
    ? R['bodyRequired'] extends false
      ? { body?: z.input<R['body']> }
      : { body: z.input<R['body']> }
    : unknown);

/** The response body, which the server's handler returns and the client resolves to. */
export type RouteOutput<R extends RouteSpec> = R['response']['schema'] extends z.ZodType
  ? z.output<R['response']['schema']>
  : void;

/** The validated request that the server's handler receives. */
export interface RouteRequest<R extends RouteSpec> {
  params: R['params'] extends z.ZodObject ? z.output<R['params']> : Record<string, never>;
  query: R['query'] extends z.ZodObject ? z.output<R['query']> : Record<string, never>;
  headers: R['headers'] extends z.ZodObject ? z.output<R['headers']> : Record<string, never>;
  body: R['body'] extends z.ZodType
    ? R['bodyRequired'] extends false
      ? z.output<R['body']> | undefined
      : z.output<R['body']>
    : undefined;
}

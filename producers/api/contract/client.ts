import { errorResponse } from './errors.js';
import { apiRoutes, type ApiRoutes } from './index.js';
import { describeFirstIssue, issueMessages } from './issues.js';
import type { RouteInput, RouteOutput, RouteSpec } from './route.js';

/**
 * Typed client of the HTTP API, built from the route declarations in this
 * folder: one method per route, named by its `operationId`, such as
 * `client.createReceiver({ body })` or `client.getEvent({ params: { id } })`.
 * It uses the global fetch and sends each request once, without retries.
 */

/** An error response of the API, with the server's code, message and request id. */
export class ApiError extends Error {
  constructor(
    /** HTTP status, such as 404. */
    readonly status: number,
    /** Stable machine code, such as `not_found`; `http_error` when the body had no error object. */
    readonly code: string,
    message: string,
    /** The server's id of the request, for its log; null when the body had none. */
    readonly requestId: string | null,
    readonly operationId: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  /** Base URL of the API, such as `http://127.0.0.1:3000`; a path prefix is kept. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** Limit of each request, in ms; none by default. */
  timeoutMs?: number;
  /**
   * Checks every success response against the route's response schema and
   * throws when it does not match. Meant for tests of the contract.
   */
  validateResponses?: boolean;
  /** Replaces the global fetch, for tests. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** A success response with its status and headers. */
export interface ApiResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

type MethodArgs<R extends RouteSpec> = {} extends RouteInput<R>
  ? [input?: RouteInput<R>, options?: CallOptions]
  : [input: RouteInput<R>, options?: CallOptions];

/** One method per route, resolving to the response body (void for 204). */
export type ClientMethods<Routes extends readonly RouteSpec[]> = {
  [R in Routes[number] as R['operationId']]: (...args: MethodArgs<R>) => Promise<RouteOutput<R>>;
};

type RouteById<Routes extends readonly RouteSpec[], Id> = Extract<Routes[number], { operationId: Id }>;

export type Client<Routes extends readonly RouteSpec[] = ApiRoutes> = ClientMethods<Routes> & {
  /** Calls a route by operationId and resolves to the status, headers and body. */
  send<Id extends Routes[number]['operationId']>(
    operationId: Id,
    ...args: MethodArgs<RouteById<Routes, Id>>
  ): Promise<ApiResponse<RouteOutput<RouteById<Routes, Id>>>>;
};

interface AnyInput {
  params?: Record<string, unknown>;
  query?: Record<string, unknown>;
  headers?: Record<string, unknown>;
  body?: unknown;
}

function buildUrl(baseUrl: string, route: RouteSpec, input: AnyInput): string {
  const path = route.path.replace(/:([A-Za-z0-9_]+)/g, (_match, name: string) => {
    const value = input.params?.[name];
    if (value === undefined || value === null || value === '') {
      throw new TypeError(`${route.operationId}: params.${name} is missing`);
    }
    // URL parsing resolves "." and ".." segments, also percent-encoded, so
    // `/v1/events/../deliveries` would reach another route.
    if (value === '.' || value === '..') {
      throw new TypeError(`${route.operationId}: params.${name} must not be "." or "..", got "${value}"`);
    }
    return encodeURIComponent(String(value));
  });
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(input.query ?? {})) {
    if (value !== undefined && value !== null) query.set(name, String(value));
  }
  const search = query.size > 0 ? `?${query}` : '';
  return `${baseUrl.replace(/\/+$/, '')}${path}${search}`;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toApiError(route: RouteSpec, status: number, body: unknown): ApiError {
  const parsed = errorResponse.safeParse(body);
  if (parsed.success) {
    const { code, message, request_id } = parsed.data.error;
    return new ApiError(status, code, message, request_id, route.operationId);
  }
  const text = typeof body === 'string' ? body.slice(0, 200) : JSON.stringify(body ?? null).slice(0, 200);
  return new ApiError(
    status,
    'http_error',
    `${route.operationId}: HTTP ${status} without an error object: ${text}`,
    null,
    route.operationId,
  );
}

async function call(
  options: ClientOptions,
  route: RouteSpec,
  input: AnyInput = {},
  callOptions: CallOptions = {},
): Promise<ApiResponse<unknown>> {
  const url = buildUrl(options.baseUrl, route, input);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (value !== undefined && value !== null) headers[name] = String(value);
  }
  const hasBody = route.body !== undefined && input.body !== undefined;
  if (hasBody) headers['content-type'] = 'application/json';
  const signals = [callOptions.signal, options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined];
  const active = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, {
      method: route.method,
      headers,
      body: hasBody ? JSON.stringify(input.body) : undefined,
      signal: active.length > 0 ? AbortSignal.any(active) : undefined,
    });
  } catch (error) {
    throw new Error(
      `${route.operationId}: ${route.method} ${url} failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const body = await readJson(response);
  if (!response.ok) throw toApiError(route, response.status, body);
  if (options.validateResponses) validateResponse(route, response.status, body);
  return { status: response.status, headers: response.headers, body };
}

function validateResponse(route: RouteSpec, status: number, body: unknown) {
  if (status !== route.response.status) {
    throw new Error(
      `${route.operationId}: status ${status} is not the declared ${route.response.status}`,
    );
  }
  const schema = route.response.schema;
  if (schema === undefined) {
    if (body !== undefined) throw new Error(`${route.operationId}: 204 response has a body`);
    return;
  }
  const result = schema.safeParse(body, { error: issueMessages });
  if (!result.success) {
    const { field, message } = describeFirstIssue(result.error, 'body');
    throw new Error(`${route.operationId}: response does not match the contract: ${field}: ${message}`);
  }
  // zod drops the fields that an object schema does not declare, so a field
  // missing from the parsed copy is missing from the contract.
  const undeclared = undeclaredFields(body, result.data, 'body');
  if (undeclared.length > 0) {
    throw new Error(
      `${route.operationId}: response has fields that the contract does not declare: ${undeclared.join(', ')}`,
    );
  }
}

function undeclaredFields(sent: unknown, parsed: unknown, path: string): string[] {
  if (Array.isArray(sent) && Array.isArray(parsed)) {
    return sent.flatMap((item, index) => undeclaredFields(item, parsed[index], `${path}[${index}]`));
  }
  if (!isPlainObject(sent) || !isPlainObject(parsed)) return [];
  return Object.keys(sent).flatMap((key) =>
    key in parsed ? undeclaredFields(sent[key], parsed[key], `${path}.${key}`) : [`${path}.${key}`],
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Builds a client for any list of route declarations. */
export function createClientFor<const Routes extends readonly RouteSpec[]>(
  routes: Routes,
  options: ClientOptions,
): Client<Routes> {
  const methods: Record<string, unknown> = {};
  const byId = new Map<string, RouteSpec>();
  for (const route of routes) {
    byId.set(route.operationId, route);
    methods[route.operationId] = async (input?: AnyInput, callOptions?: CallOptions) =>
      (await call(options, route, input, callOptions)).body;
  }
  methods.send = (operationId: string, input?: AnyInput, callOptions?: CallOptions) => {
    const route = byId.get(operationId);
    if (!route) throw new TypeError(`no route with operationId "${operationId}"`);
    return call(options, route, input, callOptions);
  };
  return methods as Client<Routes>;
}

/** Builds a client of the HTTP API. */
export function createClient(options: ClientOptions): Client {
  return createClientFor(apiRoutes, options);
}

export { apiRoutes };
export type { RouteInput, RouteOutput };

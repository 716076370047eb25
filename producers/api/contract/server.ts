import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ValidationError } from '../../../shared/errors.js';
import { describeFirstIssue, issueMessages } from './issues.js';
import {
  isBodyRequired,
  type RouteOutput,
  type RouteRequest,
  type RouteSpec,
} from './route.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The contract route that the handler implements; unset on other routes. */
    operationId?: string;
  }
}

export type RouteHandler<R extends RouteSpec> = (
  input: RouteRequest<R>,
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<RouteOutput<R>>;

/**
 * Validates a value with a contract schema and turns the first problem into
 * a ValidationError that names the field, such as `subscriptions[2]`.
 */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, root: string): z.output<T> {
  const result = schema.safeParse(value, { error: issueMessages });
  if (result.success) return result.data;
  const { field, message } = describeFirstIssue(result.error, root);
  throw new ValidationError(field, message);
}

function readHeaders(schema: z.ZodObject, request: FastifyRequest) {
  // Node lowercases header names; the contract keys them as they are spelled
  // in documentation, so that a message names `Idempotency-Key`.
  return Object.fromEntries(
    Object.keys(schema.shape).map((name) => [name, request.headers[name.toLowerCase()]]),
  );
}

function readBody(route: RouteSpec, body: unknown): unknown {
  if (!route.body) return undefined;
  if (body === undefined || body === null) {
    if (isBodyRequired(route)) throw new ValidationError('body', 'is missing; send a JSON object');
    return undefined;
  }
  return parseWith(route.body, body, 'body');
}

/**
 * Registers the handler of a contract route. The request's path parameters,
 * query, declared headers and body are validated with the route's schemas
 * before the handler runs, and its result is sent with the declared status.
 */
export function implementRoute<const R extends RouteSpec>(
  app: FastifyInstance,
  route: R,
  handler: RouteHandler<R>,
) {
  app.route({
    method: route.method,
    url: route.path,
    config: { operationId: route.operationId },
    handler: async (request, reply) => {
      const input = {
        params: route.params ? parseWith(route.params, request.params, 'params') : {},
        query: route.query ? parseWith(route.query, request.query, 'query') : {},
        headers: route.headers ? parseWith(route.headers, readHeaders(route.headers, request), 'headers') : {},
        body: readBody(route, request.body),
      } as RouteRequest<R>;
      const result = await handler(input, request, reply);
      reply.code(route.response.status);
      return route.response.schema === undefined ? reply.send() : reply.send(result);
    },
  });
}

/** A route as Fastify registered it. */
export interface RegisteredRoute {
  method: string;
  url: string;
  /** Set when the route was registered by `implementRoute`. */
  operationId?: string;
}

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/**
 * Records every route registered on `app` from now on, with its contract
 * operationId, for the test that finds routes without a declaration. Call it
 * before registering routes.
 */
export function recordRoutes(app: FastifyInstance) {
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (options) => {
    for (const method of [options.method].flat()) {
      routes.push({ method, url: options.url, operationId: options.config?.operationId });
    }
  });
}

/** Returns the routes recorded by `recordRoutes`, in registration order. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

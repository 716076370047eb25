import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
} from 'fastify';
import type { PrismaClient } from '../../shared/db/client.js';
import { WebhookError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { Queues, RedisClient } from '../../shared/queues.js';
import type { Publisher } from '../publish.js';
import type { ReceiverService } from '../receivers.js';
import { requireBearerToken } from './auth.js';
import { registerDashboard } from './dashboard.js';
import { errorBody } from './error-body.js';
import { registerHealthRoute } from './health.js';
import { registerEventRoutes } from './routes/events.js';
import { registerReceiverRoutes } from './routes/receivers.js';

export interface ApiDependencies {
  prisma: PrismaClient;
  redis: RedisClient;
  queues: Queues;
  publisher: Publisher;
  receivers: ReceiverService;
  logger: Logger;
  /** Bearer token required on /v1 routes; empty turns the check off. */
  apiToken: string;
  maxPayloadBytes: number;
  bullBoardPath: string;
}

/** Room for the event envelope around the data in a request body. */
const ENVELOPE_ALLOWANCE_BYTES = 4_096;

/** Builds the HTTP API with its routes, health check and Bull Board. */
export async function buildApp(deps: ApiDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.maxPayloadBytes + ENVELOPE_ALLOWANCE_BYTES,
    // Fastify sets no request timeout by default; a client that trickles
    // its body must not hold a connection open without limit.
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
  });

  // Fastify parses text/plain bodies into strings by default. The API takes
  // JSON only, so without this parser text/plain gets 415 like other types.
  app.removeContentTypeParser('text/plain');

  // Many HTTP clients send `Content-Type: application/json` on every
  // request, so an empty JSON body counts as no body. Routes that need one
  // then report "body: is missing", and DELETE or POST .../secrets work.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    parseJson(request, body as string, done);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof WebhookError) {
      return reply
        .code(error.statusCode)
        .send(errorBody(error.code, error.message, request.id));
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const limit = deps.maxPayloadBytes + ENVELOPE_ALLOWANCE_BYTES;
      return reply.code(413).send(
        errorBody(
          'payload_too_large',
          `body: must be at most ${limit} bytes, of which an event's data may take ${deps.maxPayloadBytes} bytes as JSON (MAX_PAYLOAD_BYTES) and the other fields ${ENVELOPE_ALLOWANCE_BYTES}`,
          request.id,
        ),
      );
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      const given = JSON.stringify((request.headers['content-type'] ?? '').slice(0, 200));
      return reply.code(415).send(
        errorBody(
          'unsupported_media_type',
          `Content-Type: must be application/json, got ${given}`,
          request.id,
        ),
      );
    }
    if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return reply
        .code(400)
        .send(errorBody('invalid_request', 'body: is empty; send a JSON object', request.id));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
      return reply
        .code(400)
        .send(errorBody('invalid_request', 'body: is not valid JSON; send a JSON object', request.id));
    }
    if (error.statusCode !== undefined && error.statusCode < 500) {
      return reply
        .code(error.statusCode)
        .send(errorBody('invalid_request', `body: ${error.message}`, request.id));
    }
    request.log.error({ err: error }, 'request failed');
    return reply
      .code(500)
      .send(errorBody('internal_error', 'internal error; see the server log', request.id));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `no route for ${request.method} ${request.url}`, request.id)),
  );

  requireBearerToken(app, deps.apiToken, ['/v1/']);
  registerHealthRoute(app, deps);

  registerEventRoutes(app, deps);
  registerReceiverRoutes(app, deps);

  await registerDashboard(app, deps);

  return app;
}

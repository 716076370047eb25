import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import type { PrismaClient } from '../../shared/db/client.js';
import { WebhookError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { ProcessOps } from '../../shared/ops/process-ops.js';
import type { Queues, RedisClient } from '../../shared/queues.js';
import type { Publisher } from '../publish.js';
import type { ReceiverService } from '../receivers.js';
import type { RedeliveryService } from '../redeliver.js';
import { requireBearerToken } from './auth.js';
import { rejectEncodedBodies } from './body-encoding.js';
import { buildApiDocument } from './contract/document.js';
import { getOpenApiDocument } from './contract/document-route.js';
import { implementRoute, recordRoutes } from './contract/server.js';
import { registerDashboard } from './dashboard.js';
import { API_REFERENCE_PATH, registerReferencePage } from './reference-page.js';
import { errorBody } from './error-body.js';
import { registerHealthRoute } from './health.js';
import { registerEventRoutes } from './routes/events.js';
import { registerPayloadFilterRoutes } from './routes/payload-filters.js';
import { registerReceiverRoutes } from './routes/receivers.js';
import { registerReceiverStateRoutes } from './routes/receiver-state.js';
import { registerDeliveryRoutes } from './routes/deliveries.js';

export interface ApiDependencies {
  prisma: PrismaClient;
  redis: RedisClient;
  queues: Queues;
  publisher: Publisher;
  receivers: ReceiverService;
  /** The service behind resends and probes. The delivery listing reads through `prisma`. */
  redelivery: RedeliveryService;
  logger: Logger;
  /** Bearer token required on /v1 routes; empty turns the check off. */
  apiToken: string;
  maxPayloadBytes: number;
  bullBoardPath: string;
  /** Path of Bull Board as browsers see it; differs only behind a prefix-stripping proxy. */
  bullBoardPublicPath: string;
  /** Health check, metrics and Bull Board's queues of the process. */
  ops: ProcessOps;
  /** Maximum time for a whole request, headers and body, in ms. */
  requestTimeoutMs: number;
  /** How long an Idempotency-Key of POST /v1/events is kept, in ms. */
  idempotencyKeyTtlMs: number;
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
    requestTimeout: deps.requestTimeoutMs,
    connectionTimeout: 60_000,
    // Fastify sets the server's requestTimeout after creating it, which
    // Node 20 does not apply (a client that sent 1 byte a second stayed
    // connected), so it goes to http.createServer as well. Node checks the
    // timeout every connectionsCheckingInterval, 30 s by default.
    http: { requestTimeout: deps.requestTimeoutMs, connectionsCheckingInterval: 1_000 },
    // Errors raised before routing, such as a percent-escape that is not
    // UTF-8, skip setErrorHandler; this keeps them in the one error shape.
    frameworkErrors: (error, request, reply) => {
      const message =
        error.code === 'FST_ERR_BAD_URL'
          ? `URL: ${JSON.stringify(request.url.slice(0, 200))} has a percent-escape that is not UTF-8`
          : `request: ${error.message}`;
      (reply as FastifyReply).code(400).send(errorBody('invalid_request', message, request.id));
    },
  });

  recordRoutes(app);
  rejectEncodedBodies(app);

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
  const apiDocument = buildApiDocument();
  implementRoute(app, getOpenApiDocument, async () => apiDocument);
  registerReferencePage(app, { basePath: API_REFERENCE_PATH, document: () => apiDocument });
  registerReceiverStateRoutes(app, deps);
  registerPayloadFilterRoutes(app, deps);
  registerDeliveryRoutes(app, deps);

  await registerDashboard(app, deps);

  return app;
}

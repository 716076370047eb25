import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ValidationError } from '../../../shared/errors.js';
import type { ApiDependencies } from '../app.js';
import { parseBody } from '../parse-body.js';

const createBody = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    endpoint: z.string(),
    subscriptions: z.array(z.string()),
    secret: z.string().optional(),
    ordered: z.boolean().optional(),
    rate_limit_per_second: z.number().nullable().optional(),
    max_in_flight: z.number().nullable().optional(),
  })
  .strict();

const updateBody = z
  .object({
    name: z.string().optional(),
    description: z.string().optional(),
    endpoint: z.string().optional(),
    subscriptions: z.array(z.string()).optional(),
    ordered: z.boolean().optional(),
    rate_limit_per_second: z.number().nullable().optional(),
    max_in_flight: z.number().nullable().optional(),
  })
  .strict();

const secretBody = z.object({ secret: z.string().optional() }).strict();

type IdParams = { Params: { id: string } };

function readLimit(value: unknown): number {
  if (value === undefined) return 100;
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new ValidationError('limit', `must be a whole number from 1 to 1000, got "${String(value)}"`);
  }
  return limit;
}

export function registerReceiverRoutes(
  app: FastifyInstance,
  deps: ApiDependencies,
) {
  const receivers = deps.receivers;

  app.post('/v1/receivers', async (request, reply) => {
    const body = parseBody(createBody, request.body);
    const created = await receivers.create(body);
    request.log.info({ rxId: created.receiver.id }, 'receiver created');
    return reply.code(201).send({ ...created.receiver, secret: created.secret });
  });

  app.get<{ Querystring: { limit?: string; after?: string } }>(
    '/v1/receivers',
    async (request) => {
      const limit = readLimit(request.query.limit);
      const page = await receivers.list({ limit, after: request.query.after });
      return { receivers: page.receivers, next_after: page.nextAfter };
    },
  );

  app.get<IdParams>('/v1/receivers/:id', async (request) =>
    receivers.get(request.params.id),
  );

  app.patch<IdParams>('/v1/receivers/:id', async (request) => {
    const body = parseBody(updateBody, request.body);
    return receivers.update(request.params.id, body);
  });

  app.delete<IdParams>('/v1/receivers/:id', async (request, reply) => {
    await receivers.delete(request.params.id);
    request.log.info({ rx: request.params.id }, 'receiver deleted');
    return reply.code(204).send();
  });

  app.post<IdParams>('/v1/receivers/:id/secrets', async (request, reply) => {
    const body = parseBody(secretBody, request.body ?? {});
    const secret = await receivers.addSecret(request.params.id, body.secret);
    return reply.code(201).send(secret);
  });

  app.get<IdParams>('/v1/receivers/:id/secrets', async (request) => {
    const receiver = await receivers.get(request.params.id);
    return { secrets: receiver.secrets };
  });

  app.delete<{ Params: { id: string; secretId: string } }>(
    '/v1/receivers/:id/secrets/:secretId',
    async (request, reply) => {
      await receivers.deleteSecret(request.params.id, request.params.secretId);
      return reply.code(204).send();
    },
  );
}

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { assertUuid } from '../../../shared/ids.js';
import type { ApiDependencies } from '../app.js';
import { parseBody } from '../parse-body.js';
import { getEvent, listEventDeliveries } from '../read-events.js';

const publishBody = z
  .object({
    event_class: z.string(),
    data: z.unknown(),
    id: z.string().optional(),
  })
  .strict();

export function registerEventRoutes(app: FastifyInstance, deps: ApiDependencies) {
  app.post('/v1/events', async (request, reply) => {
    const body = parseBody(publishBody, request.body);
    const result = await deps.publisher.publishEvent({
      eventClass: body.event_class,
      data: body.data,
      id: body.id,
    });
    request.log.info(
      { eventId: result.id, created: result.created, enqueued: result.enqueued },
      'event accepted',
    );
    return reply.code(202).send({
      id: result.id,
      event_class: result.eventClass,
      time_created: result.timeCreated.toISOString(),
      created: result.created,
    });
  });

  app.get<{ Params: { id: string } }>('/v1/events/:id', async (request) => {
    return getEvent(deps.prisma, assertUuid(request.params.id, 'id'));
  });

  app.get<{ Params: { id: string } }>(
    '/v1/events/:id/deliveries',
    async (request) => {
      const id = assertUuid(request.params.id, 'id');
      return { deliveries: await listEventDeliveries(deps.prisma, id) };
    },
  );
}

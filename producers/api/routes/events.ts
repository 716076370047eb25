import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ValidationError } from '../../../shared/errors.js';
import { assertEventClass } from '../../../shared/event-class.js';
import { assertUuid } from '../../../shared/ids.js';
import type { ApiDependencies } from '../app.js';
import { parseBody } from '../parse-body.js';
import { getEvent, listEventDeliveries } from '../read-events.js';

// The fields are checked below with the API's snake_case names, so that an
// error names the JSON key that the client sent.
const publishBody = z
  .object({
    event_class: z.unknown().optional(),
    data: z.unknown().optional(),
    id: z.unknown().optional(),
  })
  .strict();

export function registerEventRoutes(app: FastifyInstance, deps: ApiDependencies) {
  app.post('/v1/events', async (request, reply) => {
    const body = parseBody(publishBody, request.body);
    const eventClass = assertEventClass(body.event_class, 'event_class');
    if (body.data === undefined) {
      throw new ValidationError('data', 'is missing; send any JSON value, such as {}');
    }
    const id = body.id === undefined ? undefined : assertUuid(body.id, 'id');
    const result = await deps.publisher.publishEvent({
      eventClass,
      data: body.data,
      id,
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

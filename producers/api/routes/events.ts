import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { ApiDependencies } from '../app.js';
import {
  getEvent,
  listEventDeliveries,
  publishEvent,
  type publishedEvent,
  type publishEventBody,
} from '../contract/events.js';
import { implementRoute } from '../contract/server.js';
import { IdempotencyKeys, requestHash } from '../idempotency.js';
import { getEvent as readEvent, listEventDeliveries as readEventDeliveries } from '../read-events.js';

type PublishedEvent = z.output<typeof publishedEvent>;

export function registerEventRoutes(app: FastifyInstance, deps: ApiDependencies) {
  const idempotencyKeys = new IdempotencyKeys(deps.prisma, deps.idempotencyKeyTtlMs, deps.logger);
  const stopCleanup = idempotencyKeys.startCleanup();
  app.addHook('onClose', async () => stopCleanup());

  async function publish(
    body: z.output<typeof publishEventBody>,
    id: string | undefined,
    log: typeof app.log,
  ): Promise<PublishedEvent> {
    const result = await deps.publisher.publishEvent({
      eventClass: body.event_class,
      data: body.data,
      id,
    });
    log.info(
      { eventId: result.id, created: result.created, enqueued: result.enqueued },
      'event accepted',
    );
    return {
      id: result.id,
      event_class: result.eventClass,
      time_created: result.timeCreated.toISOString(),
      created: result.created,
    };
  }

  implementRoute(app, publishEvent, async ({ body, headers }, request, reply) => {
    const key = headers['Idempotency-Key'];
    if (key === undefined) return publish(body, body.id, request.log);
    const result = await idempotencyKeys.run(
      key,
      requestHash(publishEvent.operationId, body),
      body.id ?? randomUUID(),
      async (eventId) => ({
        status: publishEvent.response.status,
        body: await publish(body, eventId, request.log),
      }),
    );
    if (result.replayed) {
      const replayed = result.body as PublishedEvent;
      reply.header('Idempotent-Replayed', 'true');
      request.log.info({ eventId: replayed.id }, 'replayed the response of an Idempotency-Key');
    }
    return result.body as PublishedEvent;
  });

  implementRoute(app, getEvent, async ({ params }) => readEvent(deps.prisma, params.id));

  implementRoute(app, listEventDeliveries, async ({ params }) => ({
    deliveries: await readEventDeliveries(deps.prisma, params.id),
  }));
}

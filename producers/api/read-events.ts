import type { z } from 'zod';
import type { Prisma, PrismaClient } from '../../shared/db/client.js';
import { NotFoundError } from '../../shared/errors.js';
import type { delivery, deliveryAttempt, event } from './contract/events.js';

/** An event as the API shows it. */
export type EventView = z.output<typeof event>;

export type AttemptView = z.output<typeof deliveryAttempt>;

export type DeliveryView = z.output<typeof delivery>;

export async function getEvent(
  prisma: PrismaClient,
  id: string,
): Promise<EventView> {
  const row = await prisma.webhookEvent.findUnique({ where: { id } });
  if (!row) throw new NotFoundError('event', id);
  return {
    id: row.id,
    event_class: row.eventClass,
    data: JSON.parse(row.event),
    time_created: row.timeCreated.toISOString(),
    time_dispatched: row.timeDispatched?.toISOString() ?? null,
    num_dispatched: row.numDispatched,
  };
}

type DeliveryRow = Prisma.WebhookDeliveryGetPayload<{ include: { attemptRows: true } }>;

/** Maps a delivery row with its attempt rows, oldest first, to the API's view. */
export function toDeliveryView(row: DeliveryRow): DeliveryView {
  return {
    id: row.id,
    event_id: row.eventId,
    rx_id: row.rxId,
    triggered_by: row.triggeredBy,
    state: row.state,
    attempts: row.attempts,
    failure_reason: row.failureReason,
    time_created: row.timeCreated.toISOString(),
    time_completed: row.timeCompleted?.toISOString() ?? null,
    attempt_log: row.attemptRows.map((attempt) => ({
      attempt: attempt.attempt,
      result: attempt.result,
      response_status: attempt.responseStatus,
      response_duration_ms: attempt.responseDuration,
      response_body: attempt.responseBody,
      unreachable_reason: attempt.unreachableReason,
      time_created: attempt.timeCreated.toISOString(),
    })),
  };
}

/** Lists an event's deliveries, oldest first, each with its attempts. */
export async function listEventDeliveries(
  prisma: PrismaClient,
  eventId: string,
): Promise<DeliveryView[]> {
  const exists = await prisma.webhookEvent.count({ where: { id: eventId } });
  if (exists === 0) throw new NotFoundError('event', eventId);
  const rows = await prisma.webhookDelivery.findMany({
    where: { eventId },
    orderBy: [{ timeCreated: 'asc' }, { id: 'asc' }],
    include: { attemptRows: { orderBy: { attempt: 'asc' } } },
  });
  return rows.map(toDeliveryView);
}

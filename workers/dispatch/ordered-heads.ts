import { Prisma, type PrismaClient } from '../../shared/db/client.js';
import { headOrder } from '../../shared/ordered-delivery.js';

/** A delivery to enqueue, with the receiver that picks its shard. */
export interface OrderedHead {
  id: string;
  rx_id: string;
}

/**
 * Returns the head, the next delivery to send, of every ordered receiver
 * whose head is older than `graceSeconds` and not leased. The sweeper
 * enqueues the heads that have no live job. It leaves the other pending
 * deliveries of ordered receivers alone, because their jobs would only end
 * again: the head's worker enqueues the next head when the head ends.
 * Receivers come in id order after `afterRxId`, so that a caller can walk
 * past the first `limit` of them over successive runs.
 */
export async function readOrderedHeads(
  prisma: PrismaClient,
  graceSeconds: number,
  leaseSeconds: number,
  limit: number,
  afterRxId = '00000000-0000-0000-0000-000000000000',
): Promise<OrderedHead[]> {
  // One lateral look-up per ordered receiver, the first entry of
  // lookup_webhook_pending_deliveries_by_rx_event.
  return prisma.$queryRaw<OrderedHead[]>`
    SELECT h.id::text, h.rx_id::text
    FROM webhook_rx r
    CROSS JOIN LATERAL (
      SELECT d.id, d.rx_id, d.time_created, d.time_leased
      FROM webhook_delivery d
      WHERE d.rx_id = r.id AND d.time_completed IS NULL AND d.triggered_by <> 'probe'
      ORDER BY ${Prisma.raw(headOrder('d'))}
      LIMIT 1
    ) h
    WHERE r.ordered AND r.id > ${afterRxId}::uuid
      AND h.time_created < now() - make_interval(secs => ${graceSeconds})
      AND (h.time_leased IS NULL
           OR h.time_leased < now() - make_interval(secs => ${leaseSeconds}))
    ORDER BY r.id
    LIMIT ${limit}`;
}

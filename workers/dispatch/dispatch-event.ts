import type { Queue } from 'bullmq';
import type pg from 'pg';
import { isUuid } from '../../shared/ids.js';
import type { Logger } from '../../shared/logger.js';
import {
  DELIVERY_QUEUE,
  deliveryJobOptions,
  type DeliveryJobData,
  type DeliveryQueues,
} from '../../shared/queues.js';

export interface DispatchDependencies {
  /** Dispatch runs once per event, so it uses node-postgres directly. */
  pool: pg.Pool;
  deliveryQueues: DeliveryQueues;
  logger: Logger;
}

/** A delivery to enqueue, with the receiver that picks its shard. */
export interface DeliveryRef {
  id: string;
  rxId: string;
}

export type DispatchOutcome =
  | { kind: 'dispatched'; deliveryIds: string[]; numDispatched: number }
  | { kind: 'already_dispatched'; deliveryIds: string[] }
  | { kind: 'not_found' };

// `candidates` matches subscriptions by class alone. MATERIALIZED keeps it
// a separate step, so payload filters run only on the subscriptions of the
// event's class, whatever join the planner picks. Each filter is read in its
// parsed form, the generated column filter_jsonpath_compiled. `ev_data`
// reads the event as jsonb through a scalar subquery, which PostgreSQL runs
// at most once, and not at all when no candidate has a filter (checked with
// EXPLAIN ANALYZE on PostgreSQL 15).
// webhook_event_data_jsonb returns NULL for data that jsonb cannot hold, and
// NULL @@ matches nothing.
const DISPATCH_SQL = `
    WITH ev AS (
      SELECT id, event_class, event FROM webhook_event
      WHERE id = $1::uuid AND time_dispatched IS NULL
      FOR UPDATE
    ), candidates AS MATERIALIZED (
      SELECT s.rx_id, s.filter_jsonpath_compiled AS filter
      FROM ev
      JOIN webhook_rx_subscription s ON s.event_class = ev.event_class
      WHERE NOT s.is_glob
      UNION ALL
      SELECT s.rx_id, s.filter_jsonpath_compiled AS filter
      FROM ev
      JOIN webhook_rx_subscription s ON s.is_glob
      WHERE ev.event_class ~ s.event_class_regex
    ), ev_data AS (
      SELECT webhook_event_data_jsonb(event) AS data FROM ev
    ), matched AS (
      SELECT DISTINCT rx_id FROM candidates
      WHERE filter IS NULL OR (SELECT data FROM ev_data) @@ filter
    ), live AS (
      SELECT r.id AS rx_id FROM matched JOIN webhook_rx r ON r.id = matched.rx_id
      WHERE r.time_deleted IS NULL AND r.time_disabled IS NULL
    ), inserted AS (
      INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
      SELECT gen_random_uuid(), ev.id, live.rx_id, 'event', 'pending', 0, now()
      FROM ev CROSS JOIN live
      ON CONFLICT (event_id, rx_id) WHERE triggered_by = 'event' DO NOTHING
      RETURNING id, rx_id
    ), marked AS (
      UPDATE webhook_event
      SET time_dispatched = now(), time_modified = now(),
          num_dispatched = (SELECT count(*) FROM live)
      WHERE id IN (SELECT id FROM ev)
      RETURNING num_dispatched
    )
    SELECT inserted.id::text AS delivery_id, inserted.rx_id::text AS rx_id,
      marked.num_dispatched
    FROM marked LEFT JOIN inserted ON true`;

interface DispatchRow {
  delivery_id: string | null;
  rx_id: string | null;
  num_dispatched: number;
}

/**
 * Turns one event into one delivery per live receiver with a subscription
 * that matches its class and, when the subscription has a payload filter,
 * its data. All in one statement and so in one transaction: the event
 * row is locked, the deliveries inserted and the event marked dispatched
 * together. The partial unique index on (event_id, rx_id) makes a repeated
 * job harmless. The delivery jobs are added after the commit; if that
 * fails, the job is retried and enqueues the pending deliveries again.
 */
export async function dispatchEvent(
  deps: DispatchDependencies,
  eventId: string,
): Promise<DispatchOutcome> {
  // A malformed id would make the uuid cast below fail on every retry.
  if (!isUuid(eventId)) return { kind: 'not_found' };
  const { rows } = await deps.pool.query<DispatchRow>(DISPATCH_SQL, [eventId]);

  if (rows.length > 0) {
    const deliveries = rows.flatMap((row) =>
      row.delivery_id === null || row.rx_id === null
        ? []
        : [{ id: row.delivery_id, rxId: row.rx_id }],
    );
    await enqueueDeliveries(deps.deliveryQueues, deliveries);
    return {
      kind: 'dispatched',
      deliveryIds: deliveries.map((delivery) => delivery.id),
      numDispatched: Number(rows[0]!.num_dispatched),
    };
  }

  // Nothing was marked: the event is gone, or an earlier run dispatched it
  // and may have died before adding the delivery jobs.
  const { rows: pending } = await deps.pool.query<{
    id: string | null;
    rx_id: string | null;
  }>(
    `SELECT d.id::text AS id, d.rx_id::text AS rx_id FROM webhook_event e
     LEFT JOIN webhook_delivery d
       ON d.event_id = e.id AND d.triggered_by = 'event' AND d.time_completed IS NULL
     WHERE e.id = $1::uuid`,
    [eventId],
  );
  if (pending.length === 0) return { kind: 'not_found' };
  const deliveries = pending.flatMap((row) =>
    row.id === null || row.rx_id === null ? [] : [{ id: row.id, rxId: row.rx_id }],
  );
  await enqueueDeliveries(deps.deliveryQueues, deliveries);
  return {
    kind: 'already_dispatched',
    deliveryIds: deliveries.map((delivery) => delivery.id),
  };
}

/**
 * Adds one job per delivery to its receiver's shard. BullMQ skips an id that
 * already has a job. Each shard gets its own addBulk, because on a Redis
 * Cluster one command cannot span the hash slots of two queues.
 */
export async function enqueueDeliveries(
  queues: DeliveryQueues,
  deliveries: readonly DeliveryRef[],
): Promise<void> {
  const byQueue = new Map<Queue<DeliveryJobData>, DeliveryRef[]>();
  for (const delivery of deliveries) {
    const queue = queues.forReceiver(delivery.rxId);
    const batch = byQueue.get(queue);
    if (batch) batch.push(delivery);
    else byQueue.set(queue, [delivery]);
  }
  await Promise.all(
    [...byQueue].map(([queue, batch]) =>
      queue.addBulk(
        batch.map(({ id }) => ({
          name: DELIVERY_QUEUE,
          data: { deliveryId: id },
          opts: deliveryJobOptions(id),
        })),
      ),
    ),
  );
}

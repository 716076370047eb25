import type pg from 'pg';
import type { Logger } from '../../shared/logger.js';
import {
  DELIVERY_QUEUE,
  deliveryJobOptions,
  type DeliveryQueues,
} from '../../shared/queues.js';
import { headOrder, wakeJobId } from '../../shared/ordered-delivery.js';
import {
  CLAIMED_DELIVERY_COLUMNS,
  toClaimedDelivery,
  type ClaimedDelivery,
  type ClaimResult,
  type ClaimRow,
  type DeliveryStore,
} from './delivery-store.js';

// Ordered delivery: a receiver with `ordered` set gets its deliveries one at
// a time, in the order of their events' (time_created, id). Probes are not
// part of that order, so they are claimed like any delivery.
//
// - The head of a receiver is its pending delivery with the earliest event,
//   the first entry of lookup_webhook_pending_deliveries_by_rx_event. Only
//   the head may be claimed, and only while the delivery that the previous
//   ordered claim took (webhook_rx_ordered_claim) is not in flight. Claims
//   of one receiver take a transaction advisory lock on it, so two workers
//   cannot both see "nothing in flight" and claim two deliveries at once.
// - The job of a delivery that is not the head ends without an attempt.
//   The worker that ends a delivery of the receiver, or records an attempt
//   of one, then adds a job for the head (wakeHead). The next delivery thus
//   starts as soon as the one before it is delivered or has failed for good.
// - A head whose event has an earlier event not dispatched yet, which could
//   still add an earlier delivery, waits in BullMQ's delayed set.
// - A crash between a recorded attempt and wakeHead leaves the head without
//   a job. The sweeper enqueues the head of every ordered receiver that has
//   no live job (readOrderedHeads in workers/dispatch/ordered-heads.ts).

/** First key of the advisory locks of ordered claims. The second key is a hash of the receiver id. */
const ORDERED_CLAIM_LOCK_CLASS = 0x7768_6b01;

/** How long a head waits before it checks again for undispatched earlier events. */
export const DISPATCH_WAIT_MS = 500;

/**
 * Reads what decides whether delivery $1 may be claimed, under the
 * receiver's advisory lock. `head_id` is the receiver's head.
 * `blocked_for_ms` is the time until the lease of the delivery that the last
 * ordered claim took expires, while that delivery is pending and not $1.
 * `dispatch_pending` is true while an earlier event that matches one of the
 * receiver's subscriptions is not dispatched yet. That match ignores
 * payload filters, so a head may wait for an event that turns out not to
 * match.
 */
const ORDERED_STATE_SQL = `
  SELECT d.state::text, d.triggered_by::text, r.ordered,
    (extract(epoch FROM now() - d.time_leased) * 1000)::float8 AS lease_age_ms,
    (SELECT h.id::text FROM webhook_delivery h
     WHERE h.rx_id = d.rx_id AND h.time_completed IS NULL AND h.triggered_by <> 'probe'
     ORDER BY ${headOrder('h')}
     LIMIT 1) AS head_id,
    (SELECT (extract(epoch FROM l.time_leased + make_interval(secs => $2::float8) - now())
             * 1000)::float8
     FROM webhook_rx_ordered_claim c JOIN webhook_delivery l ON l.id = c.delivery_id
     WHERE c.rx_id = d.rx_id AND l.id <> d.id AND l.time_completed IS NULL
       AND l.time_leased >= now() - make_interval(secs => $2::float8)) AS blocked_for_ms,
    EXISTS (
      SELECT 1 FROM webhook_event u
      WHERE u.time_dispatched IS NULL
        AND (u.time_created, u.id) < (e.time_created, e.id)
        AND EXISTS (
          SELECT 1 FROM webhook_rx_subscription s
          WHERE s.rx_id = d.rx_id
            AND ((NOT s.is_glob AND s.event_class = u.event_class)
                 OR (s.is_glob AND u.event_class ~ s.event_class_regex)))
    ) AS dispatch_pending
  FROM webhook_delivery d
  JOIN webhook_event e ON e.id = d.event_id
  JOIN webhook_rx r ON r.id = d.rx_id
  WHERE d.id = $1::uuid`;

interface OrderedStateRow {
  state: string;
  triggered_by: string;
  ordered: boolean;
  lease_age_ms: number | null;
  head_id: string | null;
  blocked_for_ms: number | null;
  dispatch_pending: boolean;
}

/** Takes the lease and notes the delivery as the receiver's last ordered claim. */
const ORDERED_CLAIM_SQL = `
  WITH claimed AS (
    UPDATE webhook_delivery d
    SET deliverator_id = $1, time_leased = now()
    FROM webhook_event e, webhook_rx r
    WHERE d.id = $2::uuid AND e.id = d.event_id AND r.id = d.rx_id
      AND d.state = 'pending'
      AND (d.time_leased IS NULL OR d.time_leased < now() - make_interval(secs => $3::float8))
    RETURNING ${CLAIMED_DELIVERY_COLUMNS}
  ), noted AS (
    INSERT INTO webhook_rx_ordered_claim (rx_id, delivery_id, time_claimed)
    SELECT rx_id::uuid, id::uuid, now() FROM claimed
    ON CONFLICT (rx_id) DO UPDATE
    SET delivery_id = EXCLUDED.delivery_id, time_claimed = EXCLUDED.time_claimed
  )
  SELECT * FROM claimed`;

/** Served by lookup_webhook_pending_deliveries_by_rx_event. */
const HEAD_SQL = `
  SELECT d.id::text FROM webhook_delivery d
  WHERE d.rx_id = $1::uuid AND d.time_completed IS NULL AND d.triggered_by <> 'probe'
  ORDER BY ${headOrder('d')}
  LIMIT 1`;

export type OrderedClaimResult =
  | Exclude<ClaimResult, { kind: 'ordered' }>
  /** Another pending delivery of the receiver comes first. */
  | { kind: 'not_head'; headId: string }
  /** The delivery is the head but may not be sent yet, so try again after `delayMs`. */
  | { kind: 'wait'; delayMs: number; reason: string };

export interface OrderedDeliveryOptions {
  pool: pg.Pool;
  queues: DeliveryQueues;
  deliveratorId: string;
  leaseTimeoutMs: number;
  logger: Logger;
}

/** Claims and hands on the deliveries of ordered receivers. */
export class OrderedDelivery {
  constructor(private readonly options: OrderedDeliveryOptions) {}

  /**
   * Takes the lease of a delivery of an ordered receiver when it is the
   * receiver's head and no other delivery of the receiver is in flight.
   */
  async claim(deliveryId: string, rxId: string): Promise<OrderedClaimResult> {
    const client = await this.options.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await this.claimLocked(client, deliveryId, rxId);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  private async claimLocked(
    client: pg.PoolClient,
    deliveryId: string,
    rxId: string,
  ): Promise<OrderedClaimResult> {
    const leaseSeconds = this.options.leaseTimeoutMs / 1000;
    await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))', [
      ORDERED_CLAIM_LOCK_CLASS,
      rxId,
    ]);
    // Under READ COMMITTED each statement reads the rows committed before it
    // started, so this read, made after the lock, includes every lease that
    // an earlier holder of the lock took.
    const { rows } = await client.query<OrderedStateRow>(ORDERED_STATE_SQL, [
      deliveryId,
      leaseSeconds,
    ]);
    const row = rows[0];
    if (row === undefined) return { kind: 'not_found' };
    if (row.state !== 'pending') return { kind: 'finished' };
    if (row.lease_age_ms !== null && row.lease_age_ms < this.options.leaseTimeoutMs) {
      return {
        kind: 'leased',
        leaseExpiresInMs: Math.max(0, this.options.leaseTimeoutMs - row.lease_age_ms),
      };
    }
    // A receiver switched to unordered since the batch claim read it, or a
    // probe, is claimed without the ordering checks.
    const ordered = row.ordered && row.triggered_by !== 'probe';
    if (ordered && row.head_id !== null && row.head_id !== deliveryId) {
      return { kind: 'not_head', headId: row.head_id };
    }
    if (ordered && row.blocked_for_ms !== null) {
      // The holder hands on with wakeHead when it finishes, so this wait
      // only matters when the holder died.
      return {
        kind: 'wait',
        delayMs: Math.ceil(row.blocked_for_ms) + 1_000,
        reason: 'another delivery of the ordered receiver is in flight',
      };
    }
    if (ordered && row.dispatch_pending) {
      return {
        kind: 'wait',
        delayMs: DISPATCH_WAIT_MS,
        reason: 'an earlier event of the ordered receiver is not dispatched yet',
      };
    }
    const claimed = await client.query<ClaimRow>(ORDERED_CLAIM_SQL, [
      this.options.deliveratorId,
      deliveryId,
      leaseSeconds,
    ]);
    const claimedRow = claimed.rows[0];
    if (claimedRow === undefined) return { kind: 'finished' };
    return { kind: 'claimed', delivery: toClaimedDelivery(claimedRow) };
  }

  /**
   * Adds a job for the head of an ordered receiver after delivery `after`
   * ended or recorded an attempt, unless `after` is still the head, whose
   * own job retries it. The job id is wakeJobId(head), not the head's own
   * id, because the head may still have a job running that is about to end
   * as not the head, and BullMQ ignores an add whose job id exists. The
   * sweeper checks both ids, so a head whose wake job waits out a retry
   * delay gets no second job.
   */
  async wakeHead(rxId: string, after: { id: string; attempts: number }): Promise<void> {
    const { rows } = await this.options.pool.query<{ id: string }>(HEAD_SQL, [rxId]);
    const head = rows[0];
    if (head === undefined || head.id === after.id) return;
    const jobId = wakeJobId(head.id);
    await this.options.queues
      .forReceiver(rxId)
      .add(DELIVERY_QUEUE, { deliveryId: head.id }, { ...deliveryJobOptions(head.id), jobId });
    this.options.logger.debug(
      { rxId, deliveryId: head.id, afterDeliveryId: after.id, jobId },
      'ordered delivery: enqueued the next head',
    );
  }
}

/** Claims a delivery, through OrderedDelivery when its receiver is ordered. */
export async function claimInOrder(
  store: DeliveryStore,
  ordering: OrderedDelivery,
  deliveryId: string,
): Promise<OrderedClaimResult> {
  const claim = await store.claim(deliveryId);
  if (claim.kind !== 'ordered') return claim;
  return ordering.claim(deliveryId, claim.rxId);
}

/**
 * Enqueues the head of an ordered receiver after `delivery` ended or had an
 * attempt recorded (`attempts` counts it). A failure is logged and not
 * thrown: the delivery's own state is already written, and the sweeper
 * enqueues a head that has no job.
 */
export async function handOn(
  ordering: OrderedDelivery,
  delivery: ClaimedDelivery,
  attempts: number,
  log: Logger,
): Promise<void> {
  if (!delivery.rxOrdered || delivery.triggeredBy === 'probe') return;
  try {
    await ordering.wakeHead(delivery.rxId, { id: delivery.id, attempts });
  } catch (error) {
    log.warn(
      { err: error },
      'enqueueing the next delivery of the ordered receiver failed; the sweeper enqueues it',
    );
  }
}


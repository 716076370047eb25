import type { PrismaClient } from '../../shared/db/client.js';
import type { AttemptOutcome } from './send-request.js';

/** What the worker needs to send one delivery, read while claiming it. */
export interface ClaimedDelivery {
  id: string;
  eventId: string;
  rxId: string;
  attempts: number;
  eventClass: string;
  dataJson: string;
  eventTimeCreated: Date;
  endpoint: string;
  rxDeleted: boolean;
  secrets: string[];
}

export type ClaimResult =
  | { kind: 'claimed'; delivery: ClaimedDelivery }
  | { kind: 'finished' }
  | { kind: 'not_found' }
  | { kind: 'leased'; leaseExpiresInMs: number };

interface ClaimRow {
  id: string;
  event_id: string;
  rx_id: string;
  attempts: number;
  event_class: string;
  event: string;
  event_time_created: Date;
  endpoint: string;
  rx_deleted: boolean;
  secrets: string[] | null;
}

/**
 * Reads and writes delivery rows for one worker process. Every write is one
 * statement, so that a crash leaves either all of it or none of it.
 */
export class DeliveryStore {
  constructor(
    private readonly prisma: PrismaClient,
    /** Identifies this process in deliverator_id columns. */
    readonly deliveratorId: string,
    private readonly leaseTimeoutMs: number,
  ) {}

  /**
   * Takes the lease of a pending delivery unless another worker holds a
   * lease younger than the lease timeout. The lease is what keeps a job that
   * BullMQ runs twice (after a stall) from sending twice at once.
   */
  async claim(deliveryId: string): Promise<ClaimResult> {
    const rows = await this.prisma.$queryRaw<ClaimRow[]>`
      UPDATE webhook_delivery d
      SET deliverator_id = ${this.deliveratorId}, time_leased = now()
      FROM webhook_event e, webhook_rx r
      WHERE d.id = ${deliveryId}::uuid
        AND d.state = 'pending'
        AND e.id = d.event_id
        AND r.id = d.rx_id
        AND (d.time_leased IS NULL
             OR d.time_leased < now() - make_interval(secs => ${this.leaseTimeoutMs / 1000}))
      RETURNING d.id::text, d.event_id::text, d.rx_id::text, d.attempts,
        e.event_class, e.event, e.time_created AS event_time_created,
        r.endpoint, r.time_deleted IS NOT NULL AS rx_deleted,
        (SELECT array_agg(s.secret ORDER BY s.time_created)
         FROM webhook_secret s
         WHERE s.rx_id = d.rx_id AND s.time_deleted IS NULL) AS secrets`;
    const row = rows[0];
    if (row) {
      return {
        kind: 'claimed',
        delivery: {
          id: row.id,
          eventId: row.event_id,
          rxId: row.rx_id,
          attempts: Number(row.attempts),
          eventClass: row.event_class,
          dataJson: row.event,
          eventTimeCreated: new Date(row.event_time_created),
          endpoint: row.endpoint,
          rxDeleted: row.rx_deleted,
          secrets: row.secrets ?? [],
        },
      };
    }
    const state = await this.prisma.$queryRaw<
      { state: string; lease_age_ms: number | null }[]
    >`
      SELECT state::text,
        (extract(epoch FROM now() - time_leased) * 1000)::float8 AS lease_age_ms
      FROM webhook_delivery WHERE id = ${deliveryId}::uuid`;
    const current = state[0];
    if (!current) return { kind: 'not_found' };
    if (current.state !== 'pending') return { kind: 'finished' };
    const age = current.lease_age_ms ?? 0;
    return {
      kind: 'leased',
      leaseExpiresInMs: Math.max(0, this.leaseTimeoutMs - age),
    };
  }

  /**
   * Writes the attempt row and updates the delivery in one statement. The
   * update only applies while this worker still holds the lease and the
   * attempt count is the one it read, so attempt numbers never repeat.
   * Returns false when the lease was lost and nothing was written.
   */
  async recordAttempt(
    delivery: ClaimedDelivery,
    outcome: AttemptOutcome,
    final: 'delivered' | 'failed' | null,
  ): Promise<boolean> {
    const rows = await this.prisma.$queryRaw<{ attempt: number }[]>`
      WITH updated AS (
        UPDATE webhook_delivery
        SET attempts = attempts + 1,
            state = COALESCE(${final}::webhook_delivery_state, state),
            time_completed = CASE WHEN ${final}::text IS NULL THEN NULL ELSE now() END,
            deliverator_id = NULL,
            time_leased = NULL
        WHERE id = ${delivery.id}::uuid
          AND state = 'pending'
          AND deliverator_id = ${this.deliveratorId}
          AND attempts = ${delivery.attempts}
        RETURNING id, rx_id, attempts
      )
      INSERT INTO webhook_delivery_attempt (
        id, delivery_id, attempt, rx_id, result, response_status,
        response_duration, response_body, unreachable_reason, time_created,
        deliverator_id)
      SELECT gen_random_uuid(), updated.id, updated.attempts, updated.rx_id,
        ${outcome.result}::webhook_delivery_result, ${outcome.responseStatus},
        ${outcome.responseDurationMs}, ${outcome.responseBody},
        ${outcome.unreachableReason}, now(), ${this.deliveratorId}
      FROM updated
      RETURNING attempt`;
    return rows.length === 1;
  }

  /** Ends a pending delivery that will get no request, with the reason. */
  async finishWithoutAttempt(deliveryId: string, reason: string) {
    await this.prisma.$executeRaw`
      UPDATE webhook_delivery
      SET state = 'failed', time_completed = now(), failure_reason = ${reason},
          deliverator_id = NULL, time_leased = NULL
      WHERE id = ${deliveryId}::uuid AND state = 'pending'`;
  }

  /** Gives the lease back without an attempt, for a clean shutdown. */
  async release(deliveryId: string) {
    await this.prisma.$executeRaw`
      UPDATE webhook_delivery SET deliverator_id = NULL, time_leased = NULL
      WHERE id = ${deliveryId}::uuid AND deliverator_id = ${this.deliveratorId}`;
  }
}

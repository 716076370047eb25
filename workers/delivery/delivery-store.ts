import type pg from 'pg';
import { Batcher } from '../../shared/batcher.js';
import { GONE_ONLY, receiverFailureCtes, type ReceiverDisabling } from './receiver-disabling.js';
import type { AttemptOutcome } from './send-request.js';

/** Fields that the worker reads while claiming a delivery and needs to send it. */
export interface ClaimedDelivery {
  id: string;
  eventId: string;
  rxId: string;
  /** Origin of the delivery: dispatch (`event`), a resend or a probe. */
  triggeredBy: 'event' | 'resend' | 'probe';
  attempts: number;
  eventClass: string;
  dataJson: string;
  eventTimeCreated: Date;
  endpoint: string;
  rxDeleted: boolean;
  /** Reason the receiver is disabled, or null while it is enabled. */
  rxDisabledReason: string | null;
  secrets: string[];
  /** The receiver's delivery options (see ordering.ts and rate-limit.ts). */
  rxOrdered: boolean;
  rateLimitPerSecond: number | null;
  maxInFlight: number | null;
}

export type ClaimResult =
  | { kind: 'claimed'; delivery: ClaimedDelivery }
  | { kind: 'finished' }
  | { kind: 'not_found' }
  | { kind: 'leased'; leaseExpiresInMs: number }
  /** A pending delivery of an ordered receiver, which only OrderedDelivery claims. */
  | { kind: 'ordered'; rxId: string };

/** A row of CLAIMED_DELIVERY_COLUMNS. */
export interface ClaimRow {
  id: string;
  event_id: string;
  rx_id: string;
  triggered_by: 'event' | 'resend' | 'probe';
  attempts: number;
  event_class: string;
  event: string;
  event_time_created: Date;
  endpoint: string;
  rx_deleted: boolean;
  rx_disabled_reason: string | null;
  secrets: string[] | null;
  rx_ordered: boolean;
  rate_limit_per_second: number | null;
  max_in_flight: number | null;
}

interface AttemptInput {
  delivery: ClaimedDelivery;
  outcome: AttemptOutcome;
  final: 'delivered' | 'failed' | null;
}

/**
 * The columns of a claimed delivery, for the RETURNING clause of an UPDATE
 * of webhook_delivery `d` joined with its event `e` and receiver `r`.
 */
export const CLAIMED_DELIVERY_COLUMNS = `d.id::text, d.event_id::text, d.rx_id::text,
    d.triggered_by::text AS triggered_by, d.attempts,
    e.event_class, e.event, e.time_created AS event_time_created,
    r.endpoint, r.time_deleted IS NOT NULL AS rx_deleted,
    r.disabled_reason AS rx_disabled_reason,
    (SELECT array_agg(s.secret ORDER BY s.time_created)
     FROM webhook_secret s
     WHERE s.rx_id = d.rx_id AND s.time_deleted IS NULL) AS secrets,
    r.ordered AS rx_ordered, r.rate_limit_per_second, r.max_in_flight`;

/**
 * Takes the lease of every listed pending delivery that no other worker
 * holds a fresh lease on. SKIP LOCKED leaves rows that another transaction
 * is writing, so two batches never wait on each other or deadlock; a skipped
 * delivery is reported as leased and tried again later. Deliveries of
 * ordered receivers, probes aside, are left to OrderedDelivery, which
 * claims one of them at a time.
 */
const CLAIM_SQL = `
  WITH claimable AS (
    SELECT d.id FROM webhook_delivery d
    WHERE d.id = ANY($2::uuid[])
      AND d.state = 'pending'
      AND (d.time_leased IS NULL
           OR d.time_leased < now() - make_interval(secs => $3::float8))
      AND (d.triggered_by = 'probe'
           OR NOT EXISTS (SELECT 1 FROM webhook_rx o WHERE o.id = d.rx_id AND o.ordered))
    ORDER BY d.id
    FOR UPDATE SKIP LOCKED
  )
  UPDATE webhook_delivery d
  SET deliverator_id = $1, time_leased = now()
  FROM claimable c, webhook_event e, webhook_rx r
  WHERE d.id = c.id AND e.id = d.event_id AND r.id = d.rx_id
  RETURNING ${CLAIMED_DELIVERY_COLUMNS}`;

const CLAIM_STATE_SQL = `
  SELECT d.id::text, d.state::text,
    (extract(epoch FROM now() - d.time_leased) * 1000)::float8 AS lease_age_ms,
    d.rx_id::text, r.ordered AND d.triggered_by <> 'probe' AS ordered
  FROM webhook_delivery d JOIN webhook_rx r ON r.id = d.rx_id
  WHERE d.id = ANY($1::uuid[])`;

/**
 * Writes a batch of attempts. Each delivery row is updated only while this
 * worker still holds its lease and its attempt count is the one the worker
 * read, and the attempt row is inserted only for rows that were updated, so
 * attempt numbers never repeat or skip. The same statement tracks how long
 * each receiver has been failing and disables it (see receiver-disabling.ts),
 * and returns the reason with the attempts of a receiver that it disabled.
 */
const RECORD_SQL = `
  WITH input AS (
    SELECT * FROM unnest(
      $2::uuid[], $3::int[], $4::text[], $5::text[], $6::int[], $7::int[],
      $8::text[], $9::text[]
    ) AS t(id, prev_attempts, final_state, result, status, duration, body, reason)
  ), updated AS (
    UPDATE webhook_delivery d
    SET attempts = d.attempts + 1,
        state = COALESCE(i.final_state::webhook_delivery_state, d.state),
        time_completed = CASE WHEN i.final_state IS NULL THEN NULL ELSE now() END,
        deliverator_id = NULL,
        time_leased = NULL
    FROM input i
    WHERE d.id = i.id
      AND d.state = 'pending'
      AND d.deliverator_id = $1
      AND d.attempts = i.prev_attempts
    RETURNING d.id, d.rx_id, d.attempts
  ),${receiverFailureCtes('$10')}
  INSERT INTO webhook_delivery_attempt (
    id, delivery_id, attempt, rx_id, result, response_status,
    response_duration, response_body, unreachable_reason, time_created,
    deliverator_id)
  SELECT gen_random_uuid(), u.id, u.attempts, u.rx_id,
    i.result::webhook_delivery_result, i.status, i.duration, i.body, i.reason,
    now(), $1
  FROM updated u JOIN input i ON i.id = u.id
  RETURNING delivery_id::text, rx_id::text,
    (SELECT reason FROM rx_disabled WHERE rx_disabled.id = webhook_delivery_attempt.rx_id)
      AS rx_disabled_reason`;

/**
 * Reads and writes delivery rows for one worker process. Claims and attempt
 * writes of concurrent jobs are batched into one statement each, and every
 * statement is atomic, so a crash leaves all of a write or none of it.
 */
export class DeliveryStore {
  private readonly claims: Batcher<string, ClaimResult>;
  private readonly records: Batcher<AttemptInput, boolean>;

  constructor(
    private readonly pool: pg.Pool,
    /** Identifies this process in deliverator_id columns. */
    readonly deliveratorId: string,
    private readonly leaseTimeoutMs: number,
    batching = { maxBatch: 100, maxInFlight: 2 },
    private readonly disabling: ReceiverDisabling = GONE_ONLY,
  ) {
    this.claims = new Batcher((ids) => this.claimBatch(ids), batching);
    this.records = new Batcher((inputs) => this.recordBatch(inputs), batching);
  }

  /**
   * Takes the lease of a pending delivery unless another worker holds a
   * lease younger than the lease timeout. The lease is what keeps a job that
   * BullMQ runs twice (after a stall) from sending twice at once.
   */
  claim(deliveryId: string): Promise<ClaimResult> {
    return this.claims.run(deliveryId);
  }

  /**
   * Writes the attempt row and updates the delivery atomically. Returns
   * false when this worker lost the lease and nothing was written.
   */
  recordAttempt(
    delivery: ClaimedDelivery,
    outcome: AttemptOutcome,
    final: 'delivered' | 'failed' | null,
  ): Promise<boolean> {
    return this.records.run({ delivery, outcome, final });
  }

  /** Ends a pending delivery that will get no request, with the reason. */
  async finishWithoutAttempt(deliveryId: string, reason: string) {
    await this.pool.query(
      `UPDATE webhook_delivery
       SET state = 'failed', time_completed = now(), failure_reason = $2,
           deliverator_id = NULL, time_leased = NULL
       WHERE id = $1::uuid AND state = 'pending'`,
      [deliveryId, reason],
    );
  }

  /** Gives the lease back without an attempt, such as before the job waits for a receiver limit. */
  async release(deliveryId: string) {
    await this.pool.query(
      `UPDATE webhook_delivery SET deliverator_id = NULL, time_leased = NULL
       WHERE id = $1::uuid AND deliverator_id = $2`,
      [deliveryId, this.deliveratorId],
    );
  }

  private async claimBatch(ids: string[]): Promise<ClaimResult[]> {
    const unique = [...new Set(ids)];
    const claimed = await this.pool.query<ClaimRow>(CLAIM_SQL, [
      this.deliveratorId,
      unique,
      this.leaseTimeoutMs / 1000,
    ]);
    const byId = new Map<string, ClaimResult>();
    for (const row of claimed.rows) {
      byId.set(row.id, { kind: 'claimed', delivery: toClaimedDelivery(row) });
    }
    const rest = unique.filter((id) => !byId.has(id));
    if (rest.length > 0) {
      const states = await this.pool.query<{
        id: string;
        state: string;
        lease_age_ms: number | null;
        rx_id: string;
        ordered: boolean;
      }>(CLAIM_STATE_SQL, [rest]);
      for (const row of states.rows) {
        const result =
          row.state === 'pending' && row.ordered
            ? { kind: 'ordered' as const, rxId: row.rx_id }
            : this.unclaimedResult(row.state, row.lease_age_ms);
        byId.set(row.id, result);
      }
    }
    // A duplicate id in one batch gets the lease once. The other caller gets
    // `leased`, as it would a moment later.
    const seen = new Set<string>();
    return ids.map((id) => {
      const result = byId.get(id) ?? { kind: 'not_found' as const };
      if (result.kind === 'claimed' && seen.has(id)) {
        return { kind: 'leased', leaseExpiresInMs: this.leaseTimeoutMs };
      }
      seen.add(id);
      return result;
    });
  }

  private unclaimedResult(state: string, leaseAgeMs: number | null): ClaimResult {
    if (state !== 'pending') return { kind: 'finished' };
    // A pending row without a lease was skipped because a write, such as an
    // attempt being recorded, held its row lock. No worker leases it, so the
    // caller may try again in a moment instead of waiting out a whole lease.
    if (leaseAgeMs === null) return { kind: 'leased', leaseExpiresInMs: 0 };
    return {
      kind: 'leased',
      leaseExpiresInMs: Math.max(0, this.leaseTimeoutMs - leaseAgeMs),
    };
  }

  private async recordBatch(inputs: AttemptInput[]): Promise<boolean[]> {
    const result = await this.pool.query<{
      delivery_id: string;
      rx_id: string;
      rx_disabled_reason: string | null;
    }>(RECORD_SQL, [
      this.deliveratorId,
      inputs.map((input) => input.delivery.id),
      inputs.map((input) => input.delivery.attempts),
      inputs.map((input) => input.final),
      inputs.map((input) => input.outcome.result),
      inputs.map((input) => input.outcome.responseStatus),
      inputs.map((input) => input.outcome.responseDurationMs),
      inputs.map((input) => input.outcome.responseBody),
      inputs.map((input) => input.outcome.unreachableReason),
      this.disabling.disableAfterMs,
    ]);
    const disabled = new Map<string, string>();
    for (const row of result.rows) {
      if (row.rx_disabled_reason !== null) disabled.set(row.rx_id, row.rx_disabled_reason);
    }
    for (const [rxId, reason] of disabled) this.disabling.onDisabled(rxId, reason);
    const written = new Set(result.rows.map((row) => row.delivery_id));
    return inputs.map((input) => written.has(input.delivery.id));
  }
}

export function toClaimedDelivery(row: ClaimRow): ClaimedDelivery {
  return {
    id: row.id,
    eventId: row.event_id,
    rxId: row.rx_id,
    triggeredBy: row.triggered_by,
    attempts: Number(row.attempts),
    eventClass: row.event_class,
    dataJson: row.event,
    eventTimeCreated: new Date(row.event_time_created),
    endpoint: row.endpoint,
    rxDeleted: row.rx_deleted,
    rxDisabledReason: row.rx_disabled_reason,
    secrets: row.secrets ?? [],
    rxOrdered: row.rx_ordered,
    rateLimitPerSecond: row.rate_limit_per_second,
    maxInFlight: row.max_in_flight,
  };
}

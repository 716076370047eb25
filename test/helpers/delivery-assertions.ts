import type pg from 'pg';
import { expect } from 'vitest';
import { waitFor } from './test-env.js';

/** A `webhook_delivery` row as the delivery tests read it. */
export interface DeliveryRow {
  id: string;
  event_id: string;
  rx_id: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  time_completed: Date | null;
  failure_reason: string | null;
  deliverator_id: string | null;
}

/** A `webhook_delivery_attempt` row as the delivery tests read it. */
export interface AttemptRow {
  attempt: number;
  result: 'succeeded' | 'failed_http_error' | 'failed_unreachable' | 'failed_timeout';
  response_status: number | null;
  response_duration: number | null;
  response_body: string | null;
  /** Size of `response_body` in UTF-8 bytes, as PostgreSQL stores it. */
  response_body_bytes: number | null;
  unreachable_reason: string | null;
  time_created: Date;
  deliverator_id: string;
}

const DELIVERY_COLUMNS = `id::text, event_id::text, rx_id::text, state::text, attempts,
  time_completed, failure_reason, deliverator_id`;

/** Reads the delivery of one event to one receiver, or undefined when none exists. */
export async function readDelivery(
  pool: pg.Pool,
  eventId: string,
  rxId: string,
): Promise<DeliveryRow | undefined> {
  const { rows } = await pool.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_delivery WHERE event_id = $1 AND rx_id = $2`,
    [eventId, rxId],
  );
  return rows[0];
}

/** Reads the attempt rows of one delivery, ordered by attempt number. */
export async function readAttempts(pool: pg.Pool, deliveryId: string): Promise<AttemptRow[]> {
  const { rows } = await pool.query<AttemptRow>(
    `SELECT attempt, result::text, response_status, response_duration, response_body,
       octet_length(response_body) AS response_body_bytes, unreachable_reason,
       time_created, deliverator_id
     FROM webhook_delivery_attempt WHERE delivery_id = $1 ORDER BY attempt`,
    [deliveryId],
  );
  return rows;
}

/** Polls until the delivery of one event to one receiver has `time_completed` set. */
export function waitForFinished(
  pool: pg.Pool,
  eventId: string,
  rxId: string,
  timeoutMs = 20_000,
): Promise<DeliveryRow> {
  return waitFor(
    async () => {
      const row = await readDelivery(pool, eventId, rxId);
      return row?.time_completed ? row : undefined;
    },
    { timeoutMs, message: `delivery of event ${eventId} to receiver ${rxId} to finish` },
  );
}

/** Polls until the delivery of one event to one receiver has at least `count` attempt rows. */
export function waitForAttempts(
  pool: pg.Pool,
  eventId: string,
  rxId: string,
  count: number,
  timeoutMs = 20_000,
): Promise<AttemptRow[]> {
  return waitFor(
    async () => {
      const row = await readDelivery(pool, eventId, rxId);
      if (!row) return undefined;
      const attempts = await readAttempts(pool, row.id);
      return attempts.length >= count ? attempts : undefined;
    },
    { timeoutMs, message: `${count} attempt rows for event ${eventId} and receiver ${rxId}` },
  );
}

interface DeliverySummary {
  id: string;
  state: string;
  attempts: number;
  time_completed: Date | null;
  numbers: number[];
  last_result: string | null;
}

/**
 * Checks every delivery in the database. Attempt numbers must run 1..n with
 * no gap or repeat, and `attempts` must equal the number of attempt rows.
 * `time_completed` must be set exactly when the state is not `pending`, and
 * the state must be `delivered` exactly when the last attempt succeeded.
 */
export async function expectConsistentAttempts(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<DeliverySummary>(
    `SELECT d.id::text, d.state::text, d.attempts, d.time_completed,
       coalesce(array_agg(a.attempt ORDER BY a.attempt) FILTER (WHERE a.attempt IS NOT NULL),
                '{}') AS numbers,
       (array_agg(a.result::text ORDER BY a.attempt DESC))[1] AS last_result
     FROM webhook_delivery d
     LEFT JOIN webhook_delivery_attempt a ON a.delivery_id = d.id
     GROUP BY d.id`,
  );
  for (const row of rows) {
    const expectedNumbers = Array.from({ length: row.numbers.length }, (_, i) => i + 1);
    expect(row.numbers, `attempt numbers of delivery ${row.id}`).toEqual(expectedNumbers);
    expect(row.attempts, `attempts column of delivery ${row.id}`).toBe(row.numbers.length);
    expect(
      row.time_completed !== null,
      `time_completed of delivery ${row.id} in state ${row.state}`,
    ).toBe(row.state !== 'pending');
    expect(
      row.state === 'delivered',
      `state ${row.state} of delivery ${row.id} with last result ${row.last_result}`,
    ).toBe(row.last_result === 'succeeded');
  }
}

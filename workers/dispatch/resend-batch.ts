import type { Queue } from 'bullmq';
import type pg from 'pg';
import type { Logger } from '../../shared/logger.js';
import type { DeliveryQueues } from '../../shared/queues.js';
import { addResendPageJob } from '../../shared/resend-jobs.js';
import { enqueueDeliveries, type DeliveryRef } from './dispatch-event.js';

export interface ResendPageDependencies {
  pool: pg.Pool;
  /** The dispatch queue, which also carries the jobs of resend pages. */
  dispatchQueue: Queue;
  deliveryQueues: DeliveryQueues;
  logger: Logger;
  /** Failed deliveries read per page, and so per transaction. */
  pageSize: number;
}

export type ResendPageOutcome =
  | { kind: 'advanced' | 'completed'; matched: number; created: number }
  | { kind: 'failed'; error: string }
  /** The batch has finished, or this page was committed by an earlier run of the job. */
  | { kind: 'stale' }
  | { kind: 'not_found' };

/**
 * The batch row, locked for the page. The cursor stays in PostgreSQL's text
 * form, because a JavaScript Date drops the microseconds and a cursor
 * rounded down would read its own row again. It starts just before
 * `time_since`, so that the first page includes rows created at that
 * instant.
 */
interface BatchRow {
  rx_id: string | null;
  state: string;
  num_steps: number;
  cursor_time_created: string;
  cursor_id: string;
  time_until: string;
  rx_deleted: boolean | null;
  rx_disabled_reason: string | null;
}

const LOCK_BATCH_SQL = `
  SELECT b.rx_id::text, b.state::text, b.num_steps,
    coalesce(b.cursor_time_created, b.time_since, '-infinity')::text AS cursor_time_created,
    coalesce(b.cursor_id, '00000000-0000-0000-0000-000000000000')::text AS cursor_id,
    b.time_until::text AS time_until,
    r.time_deleted IS NOT NULL AS rx_deleted,
    r.disabled_reason AS rx_disabled_reason
  FROM webhook_resend_batch b
  LEFT JOIN webhook_rx r ON r.id = b.rx_id
  WHERE b.id = $1::uuid
  FOR UPDATE OF b`;

interface PageRow {
  matched: number;
  last_time_created: string | null;
  last_id: string | null;
  created: { id: string; rx_id: string }[];
}

/**
 * Reads the next page of failed deliveries after the cursor and inserts one
 * resend delivery per event and receiver that still needs one, in one
 * statement. $1, $2 are the cursor, $3 the exclusive end of the range, $4
 * the page size, $5 the batch id and, for one receiver, $6 its id.
 *
 * An event is skipped when its receiver is deleted or disabled. It is also
 * skipped when a delivery of it to that receiver is delivered, because the
 * receiver has it, or pending, because it is on its way (such as a resend
 * of an earlier page). Within a page, DISTINCT turns two failed deliveries
 * of one event to one receiver into one resend. Probe deliveries are never
 * resent.
 *
 * With a receiver the read uses lookup_webhook_deliveries_by_rx_state,
 * without one lookup_webhook_deliveries_by_state, both in (time_created,
 * id) order, so the page stops after `$4` rows whatever the table's size.
 */
function pageSql(forReceiver: boolean): string {
  return `
  WITH candidates AS (
    SELECT d.id, d.event_id, d.rx_id, d.time_created
    FROM webhook_delivery d
    WHERE d.state = 'failed'
      ${forReceiver ? 'AND d.rx_id = $6::uuid' : ''}
      AND d.triggered_by <> 'probe'
      AND (d.time_created, d.id) > ($1::timestamptz, $2::uuid)
      AND d.time_created < $3::timestamptz
    ORDER BY d.time_created, d.id
    LIMIT $4
  ), eligible AS (
    SELECT DISTINCT c.event_id, c.rx_id
    FROM candidates c
    JOIN webhook_rx r ON r.id = c.rx_id
    WHERE r.time_deleted IS NULL AND r.time_disabled IS NULL
      AND NOT EXISTS (
        SELECT 1 FROM webhook_delivery o
        WHERE o.rx_id = c.rx_id AND o.event_id = c.event_id AND o.state <> 'failed')
  ), inserted AS (
    INSERT INTO webhook_delivery
      (id, event_id, rx_id, triggered_by, state, attempts, time_created, resend_batch_id)
    SELECT gen_random_uuid(), e.event_id, e.rx_id, 'resend', 'pending', 0, now(), $5::uuid
    FROM eligible e
    RETURNING id::text AS id, rx_id::text AS rx_id
  ), last_read AS (
    -- Ordered by the candidates' own columns: the output columns are text,
    -- whose order depends on the collation.
    SELECT c.time_created::text AS time_created, c.id::text AS id FROM candidates c
    ORDER BY c.time_created DESC, c.id DESC
    LIMIT 1
  )
  SELECT (SELECT count(*) FROM candidates)::int AS matched,
    (SELECT time_created FROM last_read) AS last_time_created,
    (SELECT id FROM last_read) AS last_id,
    coalesce(
      (SELECT json_agg(json_build_object('id', id, 'rx_id', rx_id)) FROM inserted),
      '[]'::json) AS created`;
}

const PAGE_FOR_RECEIVER_SQL = pageSql(true);
const PAGE_FOR_ALL_SQL = pageSql(false);

/** The page statements, for the test that checks their plans. */
export const RESEND_PAGE_SQL = { forReceiver: PAGE_FOR_RECEIVER_SQL, forAll: PAGE_FOR_ALL_SQL };

const ADVANCE_SQL = `
  UPDATE webhook_resend_batch
  SET num_matched = num_matched + $2,
      num_created = num_created + $3,
      num_steps = num_steps + 1,
      cursor_time_created = coalesce($4::timestamptz, cursor_time_created),
      cursor_id = coalesce($5::uuid, cursor_id),
      state = CASE WHEN $6::boolean THEN 'completed'::webhook_resend_batch_state ELSE state END,
      time_completed = CASE WHEN $6::boolean THEN now() END,
      time_modified = now()
  WHERE id = $1::uuid`;

const FAIL_SQL = `
  UPDATE webhook_resend_batch
  SET state = 'failed', error = $2, time_completed = now(), time_modified = now()
  WHERE id = $1::uuid`;

type LockedOutcome =
  | { kind: 'not_found' }
  | { kind: 'finished' }
  | { kind: 'behind'; currentStep: number }
  | { kind: 'failed'; error: string }
  | { kind: 'page'; matched: number; created: DeliveryRef[]; completed: boolean };

/**
 * Runs page `step` of a bulk resend: in one transaction it locks the batch
 * row, creates the page's resend deliveries and moves the cursor, then it
 * enqueues the new deliveries and adds the job of the next page. Rows come
 * first and jobs after the commit, as in dispatch, so a crash between the
 * two leaves pending deliveries without a job, which the sweeper enqueues,
 * and a batch without a next job, which the resend sweeper enqueues. A job
 * that runs again after its page was committed finds `num_steps` past its
 * step, adds the current page's job and does nothing else.
 */
export async function runResendPage(
  deps: ResendPageDependencies,
  resendBatchId: string,
  step: number,
): Promise<ResendPageOutcome> {
  const log = deps.logger.child({ resendBatchId, step });
  const locked = await runLockedPage(deps, resendBatchId, step);
  if (locked.kind === 'not_found') {
    log.warn('resend batch not found; dropping its page job');
    return { kind: 'not_found' };
  }
  if (locked.kind === 'finished') return { kind: 'stale' };
  if (locked.kind === 'behind') {
    await addResendPageJob(deps.dispatchQueue, resendBatchId, locked.currentStep);
    return { kind: 'stale' };
  }
  if (locked.kind === 'failed') {
    log.warn({ error: locked.error }, 'resend batch failed');
    return locked;
  }

  try {
    await enqueueDeliveries(deps.deliveryQueues, locked.created);
  } catch (error) {
    log.warn(
      { err: error, deliveries: locked.created.length },
      'resend deliveries stored but not enqueued; the sweeper will enqueue them',
    );
  }
  const counts = { matched: locked.matched, created: locked.created.length };
  if (locked.completed) {
    log.info(counts, 'resend batch completed');
    return { kind: 'completed', ...counts };
  }
  log.info(counts, 'resend page committed');
  await addResendPageJob(deps.dispatchQueue, resendBatchId, step + 1);
  return { kind: 'advanced', ...counts };
}

async function runLockedPage(
  deps: ResendPageDependencies,
  resendBatchId: string,
  step: number,
): Promise<LockedOutcome> {
  const client = await deps.pool.connect();
  try {
    await client.query('BEGIN');
    const outcome = await lockedPage(client, deps.pageSize, resendBatchId, step);
    await client.query('COMMIT');
    return outcome;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

async function lockedPage(
  client: pg.PoolClient,
  pageSize: number,
  resendBatchId: string,
  step: number,
): Promise<LockedOutcome> {
  const { rows } = await client.query<BatchRow>(LOCK_BATCH_SQL, [resendBatchId]);
  const batch = rows[0];
  if (batch === undefined) return { kind: 'not_found' };
  if (batch.state !== 'running') return { kind: 'finished' };
  if (batch.num_steps !== step) return { kind: 'behind', currentStep: batch.num_steps };

  const receiverProblem =
    batch.rx_deleted === true
      ? `receiver "${batch.rx_id}" was deleted while the resend ran`
      : batch.rx_disabled_reason !== null
        ? `receiver "${batch.rx_id}" was disabled while the resend ran (${batch.rx_disabled_reason}); enable it and start a new resend`
        : null;
  if (receiverProblem !== null) {
    await client.query(FAIL_SQL, [resendBatchId, receiverProblem]);
    return { kind: 'failed', error: receiverProblem };
  }

  const parameters: unknown[] = [
    batch.cursor_time_created,
    batch.cursor_id,
    batch.time_until,
    pageSize,
    resendBatchId,
  ];
  const page = await client.query<PageRow>(
    batch.rx_id === null ? PAGE_FOR_ALL_SQL : PAGE_FOR_RECEIVER_SQL,
    batch.rx_id === null ? parameters : [...parameters, batch.rx_id],
  );
  const row = page.rows[0]!;
  // A page shorter than the page size reached the end of the range.
  const completed = row.matched < pageSize;
  await client.query(ADVANCE_SQL, [
    resendBatchId,
    row.matched,
    row.created.length,
    row.last_time_created,
    row.last_id,
    completed,
  ]);
  return {
    kind: 'page',
    matched: row.matched,
    created: row.created.map((delivery) => ({ id: delivery.id, rxId: delivery.rx_id })),
    completed,
  };
}

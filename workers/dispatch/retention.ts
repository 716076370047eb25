import type { Queue } from 'bullmq';
import type pg from 'pg';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import { recordRetentionDeleted } from '../../shared/ops/metrics.js';
import type { DispatchJobData } from '../../shared/queues.js';
import { PeriodicTask } from './periodic-task.js';

/** Rows deleted per table. */
export interface RetentionCounts {
  events: number;
  deliveries: number;
  attempts: number;
}

/** Rows deleted by one retention run, and the number of delete statements it took. */
export interface RetentionResult extends RetentionCounts {
  deliveryStatements: number;
  eventStatements: number;
}

export interface RetentionOptions {
  pool: pg.Pool;
  /** Rows created longer ago than this, in ms, are deleted once finished. */
  maxAgeMs: number;
  /** Deliveries or events that one statement deletes at most. */
  batchSize: number;
  /** Wait between two statements, so that other writers get the disk and the locks. */
  pauseMs?: number;
  /** Called after every statement with the rows that it deleted, such as to count them in metrics. */
  onDeleted?: (counts: RetentionCounts) => void;
}

const DAY_MS = 86_400_000;
const DEFAULT_PAUSE_MS = 100;
/** Delay of the first run after start-up, unless the interval is shorter. */
const FIRST_RUN_DELAY_MS = 60_000;

/**
 * Deletes one batch of finished deliveries created before the cutoff, with
 * their attempt rows, found through lookup_webhook_deliveries_by_state.
 * Pending deliveries are never selected. SKIP LOCKED passes over rows that
 * another transaction has locked, so the statement never waits for a
 * worker, and the rows it skips go in a later batch or run. The statement
 * deletes the attempts itself so that it can count them, and the foreign
 * key's cascade then finds none left.
 */
const DELETE_DELIVERIES_SQL = `
  WITH doomed AS (
    SELECT id FROM webhook_delivery
    WHERE state IN ('delivered', 'failed')
      AND time_created < now() - make_interval(secs => $1::float8)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
  ), attempts AS (
    DELETE FROM webhook_delivery_attempt a USING doomed
    WHERE a.delivery_id = doomed.id
    RETURNING 1
  ), deliveries AS (
    DELETE FROM webhook_delivery d USING doomed
    WHERE d.id = doomed.id
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM deliveries)::int AS deliveries,
         (SELECT count(*) FROM attempts)::int AS attempts`;

/**
 * Locks one batch of dispatched events created before the cutoff that no
 * delivery refers to, oldest first (lookup_webhook_events_by_time).
 * Undispatched events are never selected. An event that a transaction is
 * adding a delivery to is locked by the foreign key check and skipped.
 */
const LOCK_EVENTS_SQL = `
  SELECT e.id::text FROM webhook_event e
  WHERE e.time_dispatched IS NOT NULL
    AND e.time_created < now() - make_interval(secs => $1::float8)
    AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_id = e.id)
  ORDER BY e.time_created, e.id
  LIMIT $2
  FOR UPDATE OF e SKIP LOCKED`;

/**
 * Deletes the locked events that still have no delivery. It runs as a second
 * statement, with a newer snapshot than the lock's, because a delivery that
 * a resend committed between the first statement's snapshot and its lock
 * would otherwise be deleted with the event by the foreign key's cascade.
 * Once the events are locked, no new delivery can refer to them until the
 * transaction ends.
 */
const DELETE_EVENTS_SQL = `
  DELETE FROM webhook_event e
  WHERE e.id = ANY($1::uuid[])
    AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_id = e.id)`;

/**
 * Deletes finished deliveries with their attempts, then dispatched events
 * without deliveries, all created more than `maxAgeMs` ago, in batches of
 * `batchSize` with a pause between them. Each batch is one short statement
 * or transaction, so workers and API requests wait for none of them.
 * `shouldStop` is checked between batches so that a stopping process does
 * not wait for a long run.
 */
export async function deleteExpiredRows(
  options: RetentionOptions,
  shouldStop: () => boolean = () => false,
): Promise<RetentionResult> {
  const maxAgeSeconds = options.maxAgeMs / 1000;
  const pauseMs = options.pauseMs ?? DEFAULT_PAUSE_MS;
  const result: RetentionResult = {
    events: 0,
    deliveries: 0,
    attempts: 0,
    deliveryStatements: 0,
    eventStatements: 0,
  };

  for (;;) {
    if (shouldStop()) return result;
    const { rows } = await options.pool.query<{ deliveries: number; attempts: number }>(
      DELETE_DELIVERIES_SQL,
      [maxAgeSeconds, options.batchSize],
    );
    const batch = { events: 0, deliveries: rows[0]!.deliveries, attempts: rows[0]!.attempts };
    result.deliveryStatements += 1;
    result.deliveries += batch.deliveries;
    result.attempts += batch.attempts;
    options.onDeleted?.(batch);
    if (batch.deliveries < options.batchSize) break;
    await pause(pauseMs);
  }

  for (;;) {
    if (shouldStop()) return result;
    const events = await deleteEventBatch(options.pool, maxAgeSeconds, options.batchSize);
    result.eventStatements += 1;
    result.events += events.deleted;
    options.onDeleted?.({ events: events.deleted, deliveries: 0, attempts: 0 });
    if (events.locked < options.batchSize) break;
    await pause(pauseMs);
  }
  return result;
}

async function deleteEventBatch(
  pool: pg.Pool,
  maxAgeSeconds: number,
  batchSize: number,
): Promise<{ locked: number; deleted: number }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const locked = await client.query<{ id: string }>(LOCK_EVENTS_SQL, [maxAgeSeconds, batchSize]);
    const ids = locked.rows.map((row) => row.id);
    const deleted = ids.length === 0 ? 0 : (await client.query(DELETE_EVENTS_SQL, [ids])).rowCount ?? 0;
    await client.query('COMMIT');
    return { locked: ids.length, deleted };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface RetentionJobOptions extends RetentionOptions {
  dispatchQueue: Queue<DispatchJobData>;
  logger: Logger;
  /** Period of the job over all processes, in ms. */
  intervalMs: number;
}

/**
 * Runs deleteExpiredRows on a timer in every dispatch process. A Redis
 * period lock, like the sweeper's, lets one process run it per interval,
 * and a run that outlasts the interval delays the next one. The first run
 * comes a minute after start-up (or one interval, if shorter), so that
 * processes that restart often still run it.
 */
export class RetentionJob {
  private readonly task: PeriodicTask<Awaited<ReturnType<typeof deleteExpiredRows>>>;

  constructor(options: RetentionJobOptions) {
    this.task = new PeriodicTask({
      name: 'retention run',
      queue: options.dispatchQueue,
      lockName: 'retention-lock',
      intervalMs: options.intervalMs,
      firstRunDelayMs: FIRST_RUN_DELAY_MS,
      logger: options.logger,
      run: (isStopping) => deleteExpiredRows(options, isStopping),
      // One line per run, also when it deleted nothing, so that the runs of
      // all processes can be counted and checked for overlap.
      report: (result) => {
        options.logger.info({ ...result, maxAgeMs: options.maxAgeMs }, 'retention run finished');
      },
    });
  }

  start(): void {
    this.task.start();
  }

  /** Stops the timers and waits for a run in progress to end after its current batch. */
  async stop(): Promise<void> {
    await this.task.stop();
  }
}

/**
 * Starts the retention job of a dispatch process with the configured age,
 * interval and batch size, counting deleted rows in the process metrics.
 * Returns undefined when RETENTION_DAYS is 0.
 */
export function startRetention(
  config: Config,
  deps: { pool: pg.Pool; dispatchQueue: Queue<DispatchJobData>; logger: Logger },
): RetentionJob | undefined {
  if (config.retentionDays === 0) return undefined;
  const job = new RetentionJob({
    ...deps,
    maxAgeMs: config.retentionDays * DAY_MS,
    batchSize: config.retentionBatchSize,
    intervalMs: config.retentionIntervalMs,
    onDeleted: (counts) => {
      recordRetentionDeleted('webhook_event', counts.events);
      recordRetentionDeleted('webhook_delivery', counts.deliveries);
      recordRetentionDeleted('webhook_delivery_attempt', counts.attempts);
    },
  });
  job.start();
  return job;
}

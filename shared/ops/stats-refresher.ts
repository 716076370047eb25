import type { Queue } from 'bullmq';
import type pg from 'pg';
import type { Logger } from '../logger.js';
import { withTimeout } from '../queues.js';
import type { HealthCheck } from './health-check.js';
import type { ProcessMetrics } from './metrics.js';

/** BullMQ job states that `webhook_queue_jobs` reports. */
export const QUEUE_JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'failed',
  'completed',
  'waiting-children',
] as const;

export interface StatsRefresherOptions {
  health: HealthCheck;
  metrics: ProcessMetrics;
  logger: Logger;
  intervalMs: number;
  /** Queues whose depth to report; empty in processes that report Redis reachability only. */
  queues: readonly Queue[];
  /** Pool for the oldest-undispatched query; absent where the process does not report it. */
  pool?: pg.Pool;
  /** Limit of each read, in ms. */
  timeoutMs?: number;
}

/**
 * Returns the age in seconds of the oldest event whose dispatch has not run,
 * or null when every event was dispatched. The partial index
 * lookup_undispatched_webhook_events serves the min().
 */
export async function readOldestUndispatchedAgeSeconds(pool: pg.Pool): Promise<number | null> {
  // EXTRACT returns numeric, which node-postgres returns as a string;
  // float8 comes back as a number.
  const result = await pool.query<{ age_seconds: number | null }>(`
    SELECT EXTRACT(EPOCH FROM now() - min(time_created))::float8 AS age_seconds
    FROM webhook_event
    WHERE time_dispatched IS NULL`);
  return result.rows[0]?.age_seconds ?? null;
}

/**
 * Reads queue depths, the age of the oldest undispatched event and the
 * reachability of Redis and PostgreSQL on a timer, and keeps the results in
 * gauges. A scrape of /metrics reads only the gauges, so it never waits on
 * Redis or PostgreSQL. A read that fails or times out keeps the last value,
 * and the staleness gauges grow until the next read succeeds.
 */
export class StatsRefresher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The last failure message of each step, so that a failure that repeats is logged once. */
  private readonly lastFailures = new Map<string, string>();

  constructor(private readonly options: StatsRefresherOptions) {}

  /** Refreshes once now, then every `intervalMs`; a refresh never overlaps the previous one. */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.refreshOnce().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs).unref();
      });
    };
    tick();
  }

  /** Stops the timer and waits for a refresh that is running. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Reads every statistic once; errors are logged once per change of cause. */
  async refreshOnce(): Promise<void> {
    const { health, metrics } = this.options;
    const [redis] = await Promise.all([
      health.checkRedis(),
      this.options.pool === undefined ? health.checkPostgres() : this.refreshDatabaseStats(this.options.pool),
    ]);
    // Queue reads wait for BullMQ's connection to become ready, which never
    // happens while Redis is down, so they run only after a PING succeeded.
    if (redis === 'ok' && this.options.queues.length > 0) {
      try {
        await this.refreshQueueStats();
        metrics.markQueueStatsRefreshed();
        this.noteSuccess('reading queue depths');
      } catch (error) {
        this.noteFailure('reading queue depths', error);
      }
    }
  }

  private async refreshQueueStats(): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 1_000;
    const counts = await Promise.all(
      this.options.queues.map((queue) =>
        withTimeout(queue.getJobCounts(...QUEUE_JOB_STATES), timeoutMs, `job counts of queue ${queue.name}`),
      ),
    );
    this.options.queues.forEach((queue, index) => {
      for (const state of QUEUE_JOB_STATES) {
        this.options.metrics.queueJobs.set({ queue: queue.name, state }, counts[index]![state] ?? 0);
      }
    });
  }

  private async refreshDatabaseStats(pool: pg.Pool): Promise<void> {
    const { metrics } = this.options;
    try {
      const ageSeconds = await withTimeout(
        readOldestUndispatchedAgeSeconds(pool),
        this.options.timeoutMs ?? 1_000,
        'oldest undispatched event query',
      );
      metrics.postgresUp.set(1);
      metrics.oldestUndispatchedAge.set(Math.max(0, ageSeconds ?? 0));
      metrics.markDatabaseStatsRefreshed();
      this.noteSuccess('reading the oldest undispatched event');
    } catch (error) {
      metrics.postgresUp.set(0);
      this.noteFailure('reading the oldest undispatched event', error);
    }
  }

  private noteFailure(step: string, error: unknown): void {
    const message = (error as Error).message;
    if (this.lastFailures.get(step) === message) return;
    this.lastFailures.set(step, message);
    this.options.logger.warn({ err: error, step }, 'metrics refresh failed; keeping the last values');
  }

  private noteSuccess(step: string): void {
    if (!this.lastFailures.delete(step)) return;
    this.options.logger.info({ step }, 'metrics refresh succeeded again');
  }
}

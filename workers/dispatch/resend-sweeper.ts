import type { Queue } from 'bullmq';
import type pg from 'pg';
import type { Logger } from '../../shared/logger.js';
import type { RedisClient } from '../../shared/queues.js';
import { addResendPageJob, resendPageJobId } from '../../shared/resend-jobs.js';
import { findIdsWithoutLiveJob } from './job-liveness.js';
import { PeriodLock } from './period-lock.js';

export interface ResendSweeperOptions {
  pool: pg.Pool;
  dispatchQueue: Queue;
  logger: Logger;
  /** Time since a batch's last change after which a missing page job is added again. */
  graceMs: number;
  intervalMs: number;
  /** Unfinished batches examined per run. */
  batchSize?: number;
}

/**
 * Served by lookup_unfinished_webhook_resend_batches.
 * NOTE: each run reads only the oldest `$2` unfinished batches, so with more
 * running at once the newer ones wait until older ones finish.
 */
const UNFINISHED_SQL = `
  SELECT id::text, num_steps FROM webhook_resend_batch
  WHERE time_completed IS NULL
    AND time_modified < now() - make_interval(secs => $1::float8)
  ORDER BY time_created, id
  LIMIT $2`;

/**
 * Adds the page job of every unfinished bulk resend whose job is gone. That
 * happens when the job was never added (Redis was down when the resend was
 * created), when a crash came between a page's commit and the next page's
 * add, or when Redis lost its data. Like the delivery sweeper, it is a timer
 * in every dispatch process, and a Redis lock of its own keeps two processes
 * from running in one period.
 */
export class ResendSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly batchSize: number;

  constructor(private readonly options: ResendSweeperOptions) {
    this.batchSize = options.batchSize ?? 1_000;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.options.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.sweepIfLeader()
      .catch((error) => {
        this.options.logger.warn({ err: error }, 'resend sweep failed; retrying next period');
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async sweepIfLeader(): Promise<void> {
    const queue = this.options.dispatchQueue;
    const redis = (await queue.getBackend().client) as unknown as RedisClient;
    const lockKey = queue.toKey('resend-sweeper-lock');
    const lock = new PeriodLock(redis, lockKey, this.options.intervalMs);
    const run = await lock.runIfFree(
      () => this.sweepOnce(),
      (message, error) =>
        this.options.logger.warn({ lockKey, err: error }, `resend sweeper ${message}`),
    );
    if (run.ran && run.value > 0) {
      this.options.logger.info({ resendBatches: run.value }, 'resend sweep re-enqueued page jobs');
    }
  }

  /** Runs one sweep and returns how many page jobs it added. */
  async sweepOnce(): Promise<number> {
    const { rows } = await this.options.pool.query<{ id: string; num_steps: number }>(
      UNFINISHED_SQL,
      [this.options.graceMs / 1000, this.batchSize],
    );
    const stepById = new Map(rows.map((row) => [resendPageJobId(row.id, row.num_steps), row]));
    const missing = await findIdsWithoutLiveJob(this.options.dispatchQueue, [...stepById.keys()]);
    for (const jobId of missing) {
      const row = stepById.get(jobId)!;
      await addResendPageJob(this.options.dispatchQueue, row.id, row.num_steps);
    }
    return missing.length;
  }
}

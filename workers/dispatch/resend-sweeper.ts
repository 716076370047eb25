import type { Queue } from 'bullmq';
import type pg from 'pg';
import type { Logger } from '../../shared/logger.js';
import { addResendPageJob, resendPageJobId } from '../../shared/resend-jobs.js';
import { findIdsWithoutLiveJob } from './job-liveness.js';
import { PeriodicTask } from './periodic-task.js';

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
  private readonly task: PeriodicTask<{ pageJobs: number }>;
  private readonly batchSize: number;

  constructor(private readonly options: ResendSweeperOptions) {
    this.batchSize = options.batchSize ?? 1_000;
    this.task = new PeriodicTask({
      name: 'resend sweep',
      queue: options.dispatchQueue,
      lockName: 'resend-sweeper-lock',
      intervalMs: options.intervalMs,
      logger: options.logger,
      run: async () => ({ pageJobs: await this.sweepOnce() }),
      report: (result) => {
        if (result.pageJobs === 0) return;
        options.logger.info({ resendBatches: result.pageJobs }, 'resend sweep re-enqueued page jobs');
      },
    });
  }

  start(): void {
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
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

import type { Queue } from 'bullmq';
import type { Logger } from '../../shared/logger.js';
import type { RedisClient } from '../../shared/queues.js';
import { PeriodLock } from './period-lock.js';

export interface PeriodicTaskOptions<T> {
  /** Name of the task in log messages, such as "sweep". */
  name: string;
  /** Queue whose Redis connection and key prefix hold the lock. */
  queue: Queue;
  /** Key of the lock under the queue's prefix. */
  lockName: string;
  /** Period of the task over all processes, in ms. */
  intervalMs: number;
  /** Delay of the first run after start(), or one interval when absent. */
  firstRunDelayMs?: number;
  logger: Logger;
  /** One run of the task; `isStopping` turns true once stop() is called. */
  run: (isStopping: () => boolean) => Promise<T>;
  /** Called with the result of each run that this process performed. */
  report: (result: T & { startedAt: string; durationMs: number }) => void;
}

/**
 * Runs a task on a timer in every process, with a Redis period lock so that
 * one process runs it per interval. The schedule lives in each process and
 * not in Redis, so a Redis flush cannot stop it, and a run that outlasts the
 * interval delays the next one instead of overlapping it.
 */
export class PeriodicTask<T extends object> {
  private interval: NodeJS.Timeout | undefined;
  private firstRun: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly options: PeriodicTaskOptions<T>) {}

  start(): void {
    const { firstRunDelayMs, intervalMs } = this.options;
    if (firstRunDelayMs !== undefined && firstRunDelayMs < intervalMs) {
      this.firstRun = setTimeout(() => this.tick(), firstRunDelayMs);
    }
    this.interval = setInterval(() => this.tick(), intervalMs);
  }

  /** Stops the timers and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.firstRun);
    clearInterval(this.interval);
    await this.running;
  }

  private tick(): void {
    if (this.running || this.stopping) return;
    this.running = this.runIfFree()
      .catch((error) => {
        this.options.logger.warn({ err: error }, `${this.options.name} failed; retrying next period`);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async runIfFree(): Promise<void> {
    const { queue, intervalMs, logger, name } = this.options;
    const redis = (await queue.getBackend().client) as unknown as RedisClient;
    const lockKey = queue.toKey(this.options.lockName);
    const lock = new PeriodLock(redis, lockKey, intervalMs);
    const run = await lock.runIfFree(
      async () => {
        const startedAt = new Date();
        const result = await this.options.run(() => this.stopping);
        return {
          ...result,
          startedAt: startedAt.toISOString(),
          durationMs: Date.now() - startedAt.getTime(),
        };
      },
      (message, error) => logger.warn({ lockKey, err: error }, `${name} ${message}`),
    );
    if (run.ran) this.options.report(run.value);
  }
}

import type pg from 'pg';
import type { Config } from '../config.js';
import { createPool } from '../db/client.js';
import { runCloseSteps } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import {
  allQueues,
  openQueues,
  producerConnection,
  type Queues,
  type RedisClient,
  type RedisSettings,
} from '../queues.js';
import { HealthCheck } from './health-check.js';
import { processMetrics, type ProcessMetrics } from './metrics.js';
import { StatsRefresher } from './stats-refresher.js';

/** Limit of every command on the operations connection, in ms. */
export const OPS_COMMAND_TIMEOUT_MS = 1_000;

/**
 * The operations side of one process, shared by its health endpoints,
 * /metrics and Bull Board: the metrics registry, a health check, and
 * connections of their own, so that a busy worker pool or a hung job
 * connection cannot stall them.
 */
export interface ProcessOps {
  readonly metrics: ProcessMetrics;
  readonly health: HealthCheck;
  /** Queues for Bull Board on the operations connection, opened on first use. */
  boardQueues(): Queues;
  /**
   * Starts the background refresh of the gauges. With `queueStats` it also
   * reads queue depths and the oldest undispatched event.
   */
  startStats(options: { queueStats: boolean }): void;
  close(): Promise<void>;
}

/**
 * Opens the operations connection of a process: a Redis connection whose
 * commands fail at once while Redis is down and time out after
 * OPS_COMMAND_TIMEOUT_MS while it does not respond (a paused server), so
 * that nothing built on it hangs.
 */
export function opsRedisConnection(settings: RedisSettings): RedisClient {
  return producerConnection(settings, { commandTimeout: OPS_COMMAND_TIMEOUT_MS });
}

/**
 * Opens the operations side of a process: one Redis connection and a
 * PostgreSQL pool of at most one connection, which closes when idle.
 */
export function openProcessOps(config: Config, logger: Logger, role: string): ProcessOps {
  const metrics = processMetrics();
  const redis = opsRedisConnection(config);
  // The health check and the gauges report Redis errors; without a listener
  // ioredis would print each one.
  redis.on('error', () => {});
  const pool: pg.Pool = createPool({
    databaseUrl: config.databaseUrl,
    poolMax: 1,
    applicationName: `webhook-${role}-ops`,
  });
  const health = new HealthCheck({ pool, redis, metrics });
  let queues: Queues | undefined;
  let refresher: StatsRefresher | undefined;

  const boardQueues = () => {
    if (queues === undefined) {
      queues = openQueues(redis, config);
      for (const queue of allQueues(queues)) queue.on('error', () => {});
    }
    return queues;
  };

  let closing: Promise<void> | undefined;
  return {
    metrics,
    health,
    boardQueues,
    startStats({ queueStats }) {
      if (refresher !== undefined) return;
      refresher = new StatsRefresher({
        health,
        metrics,
        logger: logger.child({ component: 'metrics' }),
        intervalMs: config.metricsRefreshMs,
        queues: queueStats ? allQueues(boardQueues()) : [],
        pool: queueStats ? pool : undefined,
      });
      refresher.start();
    },
    close() {
      closing ??= runCloseSteps(
        [
          { name: 'stopping the metrics refresh', run: async () => refresher?.stop() },
          {
            name: 'closing the Bull Board queues',
            run: async () => {
              if (queues === undefined) return;
              await queues.dispatch.close();
              await queues.delivery.close();
            },
          },
          { name: 'closing the operations Redis connection', run: async () => redis.disconnect() },
          { name: 'closing the operations PostgreSQL connection', run: () => pool.end() },
        ],
        logger,
        2_000,
      );
      return closing;
    },
  };
}

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Config } from '../../shared/config.js';
import { createDatabase } from '../../shared/db/client.js';
import {
  closeRedisConnection,
  closeStepLimits,
  runCloseSteps,
} from '../../shared/lifecycle.js';
import type { Logger } from '../../shared/logger.js';
import { errorKey, LogThrottle } from '../../shared/log-throttle.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import {
  deliveryQueueNames,
  queueKeyPrefix,
  shardConcurrency,
  workerConnection,
  type DeliveryJobData,
} from '../../shared/queues.js';
import { deliver, RetryLaterError } from './deliver.js';
import { DeliveryStore } from './delivery-store.js';
import { HttpSender } from './send-request.js';

export interface DeliveryWorkerHandle {
  readonly deliveratorId: string;
  /** Stops taking jobs, waits for running ones, and closes connections. */
  close(): Promise<void>;
}

/** Starts a delivery worker in this process. */
export function startDeliveryWorker(
  config: Config,
  logger: Logger,
  options: { dnsLookup?: typeof import('node:dns').lookup } = {},
): DeliveryWorkerHandle {
  const deliveratorId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const log = logger.child({ deliveratorId });
  const database = createDatabase({
    databaseUrl: config.databaseUrl,
    poolMax: config.databasePoolMax,
    applicationName: 'webhook-delivery',
  });
  const store = new DeliveryStore(database.pool, deliveratorId, config.leaseTimeoutMs);
  const sender = new HttpSender({
    connectTimeoutMs: config.connectTimeoutMs,
    attemptTimeoutMs: config.attemptTimeoutMs,
    responseBodyLimitBytes: config.responseBodyLimitBytes,
    guard: new NetworkGuard(config.allowedPrivateNetworks),
    dnsLookup: options.dnsLookup,
    maxSockets: Math.max(64, config.deliveryConcurrency * 2),
  });
  const connection = workerConnection(config);

  const processDelivery = async (job: Job<DeliveryJobData>) => {
    const deliveryId = job.data?.deliveryId;
    if (typeof deliveryId !== 'string') {
      throw new UnrecoverableError(
        `job ${job.id} has no deliveryId in its data`,
      );
    }
    return deliver(
      {
        store,
        sender,
        logger: log,
        retryScheduleMs: config.retryScheduleMs,
        retryJitter: config.retryJitter,
      },
      deliveryId,
    );
  };

  // One BullMQ worker per delivery shard. They split DELIVERY_CONCURRENCY
  // between them, so that the process has at most that many requests in
  // flight (or one per shard, when there are more shards than that).
  const queueNames = deliveryQueueNames(config.deliveryQueueShards);
  const concurrencies = shardConcurrency(config.deliveryConcurrency, queueNames.length);
  const failureLogThrottle = new LogThrottle(1_000);
  const readyWorkers = new Set<Worker<DeliveryJobData>>();
  const workers = queueNames.map((queueName, index) => {
    const worker = new Worker<DeliveryJobData>(queueName, processDelivery, {
      connection,
      prefix: queueKeyPrefix(config, queueName),
      concurrency: concurrencies[index],
      // A stalled job (its worker died) runs again; the lease in PostgreSQL
      // keeps the two runs from sending at once.
      maxStalledCount: 10,
      lockDuration: config.jobLockDurationMs,
      stalledInterval: config.stalledIntervalMs,
      settings: {
        backoffStrategy: (attemptsMade, _type, error) => {
          if (error instanceof RetryLaterError) return error.retryDelayMs;
          // The database or Redis failed before anything was sent.
          return Math.min(60_000, 1_000 * 2 ** Math.min(attemptsMade, 6));
        },
      },
    });
    worker.on('failed', (job, error) => {
      if (error instanceof RetryLaterError) return;
      // While PostgreSQL is unreachable every job fails the same way within
      // milliseconds; one line per second and cause is enough.
      const suppressed = failureLogThrottle.admit(errorKey(error));
      if (suppressed === null) return;
      log.error(
        { deliveryId: job?.data?.deliveryId, jobId: job?.id, queue: queueName, err: error, suppressed },
        'delivery job failed',
      );
    });
    worker.on('error', (error) => {
      log.error({ err: error, queue: queueName }, 'delivery worker error');
    });
    worker.once('ready', () => readyWorkers.add(worker));
    return worker;
  });
  log.info(
    {
      concurrency: config.deliveryConcurrency,
      shards: queueNames.length,
      shardConcurrency: concurrencies,
      queuePrefix: config.queuePrefix,
    },
    'delivery worker started',
  );

  /**
   * Closes every shard's worker at once, so that their running jobs finish
   * in parallel. A worker that never reached Redis is closed with force,
   * because it cannot have fetched a job, and BullMQ's normal close waits
   * for its connection to become ready, which never happens while Redis is
   * down.
   */
  const closeWorkers = async () => {
    const results = await Promise.allSettled(
      workers.map((worker) => worker.close(!readyWorkers.has(worker))),
    );
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
  };

  let closing: Promise<void> | undefined;
  return {
    deliveratorId,
    close() {
      closing ??= (async () => {
        // Running attempts may take the attempt timeout plus the retries of
        // their attempt-row write.
        const limits = closeStepLimits(
          config.shutdownGraceMs,
          config.attemptTimeoutMs + 15_000,
        );
        await runCloseSteps(
          [
            {
              name: 'closing the delivery workers',
              run: closeWorkers,
              timeoutMs: limits.jobStepMs,
              onTimeout: () => {
                for (const worker of workers) void worker.close(true).catch(() => {});
              },
            },
            { name: 'closing HTTP agents', run: async () => sender.close() },
            { name: 'closing Redis', run: () => closeRedisConnection(connection) },
            { name: 'closing PostgreSQL', run: () => database.close() },
          ],
          log,
          limits.otherStepMs,
        );
        log.info('delivery worker stopped');
      })();
      return closing;
    },
  };
}

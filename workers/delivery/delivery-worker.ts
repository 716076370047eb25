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
  DeliveryQueues,
  deliveryQueueNames,
  queueKeyPrefix,
  shardConcurrency,
  workerConnection,
  type DeliveryJobData,
} from '../../shared/queues.js';
import { countActiveJobs } from '../../shared/ops/metrics.js';
import { queueTelemetry } from '../../shared/ops/tracing.js';
import { DelayJobError, moveJobToDelayed } from './delay-job.js';
import { deliver, RetryLaterError } from './deliver.js';
import { MeteredDeliveryStore, TimedHttpSender } from './delivery-metrics.js';
import { DeliveryStore } from './delivery-store.js';
import { loggedReceiverDisabling } from './receiver-disabling.js';
import { OrderedDelivery } from './ordering.js';
import { ReceiverLimiter } from './rate-limit.js';
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
  const store = new MeteredDeliveryStore(
    database.pool,
    deliveratorId,
    config.leaseTimeoutMs,
    undefined,
    loggedReceiverDisabling(config.receiverDisableAfterMs, log),
  );
  const sender = new TimedHttpSender({
    connectTimeoutMs: config.connectTimeoutMs,
    attemptTimeoutMs: config.attemptTimeoutMs,
    responseBodyLimitBytes: config.responseBodyLimitBytes,
    guard: new NetworkGuard(config.allowedPrivateNetworks),
    dnsLookup: options.dnsLookup,
    maxSockets: Math.max(64, config.deliveryConcurrency * 2),
  });
  const connection = workerConnection(config);
  // The queues add the job of an ordered receiver's next delivery.
  const deliveryQueues = new DeliveryQueues(connection, config);
  const ordering = new OrderedDelivery({
    pool: database.pool,
    queues: deliveryQueues,
    deliveratorId,
    leaseTimeoutMs: config.leaseTimeoutMs,
    logger: log,
  });
  // An in-flight slot outlives the longest attempt by 5 s, so only a slot
  // of a dead or stalled process expires while its request runs.
  const limiter = new ReceiverLimiter(connection, config, config.attemptTimeoutMs + 5_000);

  const processDelivery = async (job: Job<DeliveryJobData>, token?: string) => {
    const deliveryId = job.data?.deliveryId;
    if (typeof deliveryId !== 'string') {
      throw new UnrecoverableError(
        `job ${job.id} has no deliveryId in its data`,
      );
    }
    try {
      return await deliver(
        {
          store,
          sender,
          logger: log,
          retryScheduleMs: config.retryScheduleMs,
          retryJitter: config.retryJitter,
          ordering,
          limiter,
        },
        deliveryId,
        // BullMQ counts every start of a job, so a count above 1 means that
        // this job ran before: it was delayed, retried or taken over.
        { afterDelay: job.attemptsStarted > 1 },
      );
    } catch (error) {
      if (error instanceof DelayJobError) await moveJobToDelayed(job, token, error.delayMs);
      throw error;
    }
  };

  // One BullMQ worker per delivery shard. They split DELIVERY_CONCURRENCY
  // between them, so that the process has at most that many requests in
  // flight (or one per shard, when there are more shards than that).
  const queueNames = deliveryQueueNames(config.deliveryQueueShards);
  const concurrencies = shardConcurrency(config.deliveryConcurrency, queueNames.length);
  const countedDelivery = countActiveJobs(
    'delivery',
    concurrencies.reduce((sum, value) => sum + value, 0),
    processDelivery,
  );
  const failureLogThrottle = new LogThrottle(1_000);
  const readyWorkers = new Set<Worker<DeliveryJobData>>();
  const workers = queueNames.map((queueName, index) => {
    const worker = new Worker<DeliveryJobData>(queueName, countedDelivery, {
      connection,
      prefix: queueKeyPrefix(config, queueName),
      telemetry: queueTelemetry(),
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
            { name: 'closing the delivery queues', run: () => deliveryQueues.close() },
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

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { UnrecoverableError, Worker } from 'bullmq';
import type { Config } from '../../shared/config.js';
import { createDatabase } from '../../shared/db/client.js';
import type { Logger } from '../../shared/logger.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import {
  DELIVERY_QUEUE,
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
  const connection = workerConnection(config.redisUrl);

  const worker = new Worker<DeliveryJobData>(
    DELIVERY_QUEUE,
    async (job) => {
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
    },
    {
      connection,
      prefix: config.queuePrefix,
      concurrency: config.deliveryConcurrency,
      // A stalled job (its worker died) runs again; the lease in PostgreSQL
      // keeps the two runs from sending at once.
      maxStalledCount: 10,
      settings: {
        backoffStrategy: (attemptsMade, _type, error) => {
          if (error instanceof RetryLaterError) return error.retryDelayMs;
          // The database or Redis failed before anything was sent.
          return Math.min(60_000, 1_000 * 2 ** Math.min(attemptsMade, 6));
        },
      },
    },
  );
  worker.on('failed', (job, error) => {
    if (error instanceof RetryLaterError) return;
    log.error(
      { deliveryId: job?.data?.deliveryId, jobId: job?.id, err: error },
      'delivery job failed',
    );
  });
  worker.on('error', (error) => {
    log.error({ err: error }, 'delivery worker error');
  });
  log.info(
    { concurrency: config.deliveryConcurrency, queuePrefix: config.queuePrefix },
    'delivery worker started',
  );

  let closing: Promise<void> | undefined;
  return {
    deliveratorId,
    close() {
      closing ??= (async () => {
        const steps = [
          () => worker.close(),
          async () => sender.close(),
          () => connection.quit().then(() => undefined),
          () => database.close(),
        ];
        for (const step of steps) {
          try {
            await step();
          } catch (error) {
            log.error({ err: error }, 'error while stopping the delivery worker');
          }
        }
        log.info('delivery worker stopped');
      })();
      return closing;
    },
  };
}

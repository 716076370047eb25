import { UnrecoverableError, Worker } from 'bullmq';
import type { Config } from '../../shared/config.js';
import { createDatabase } from '../../shared/db/client.js';
import {
  closeRedisConnection,
  closeStepLimits,
  runCloseSteps,
} from '../../shared/lifecycle.js';
import { countActiveJobs } from '../../shared/ops/metrics.js';
import { queueTelemetry } from '../../shared/ops/tracing.js';
import type { Logger } from '../../shared/logger.js';
import {
  DISPATCH_QUEUE,
  openQueues,
  queueKeyPrefix,
  workerConnection,
  type DispatchJobData,
} from '../../shared/queues.js';
import { RESEND_PAGE_JOB, type ResendPageJobData } from '../../shared/resend-jobs.js';
import { dispatchEvent } from './dispatch-event.js';
import { countDispatchOutcomes } from './dispatch-metrics.js';
import { runResendPage } from './resend-batch.js';
import { ResendSweeper } from './resend-sweeper.js';
import { startRetention } from './retention.js';
import { Sweeper } from './sweeper.js';

export interface DispatchWorkerHandle {
  readonly sweeper: Sweeper;
  close(): Promise<void>;
}

/** Starts a dispatch worker and its sweeper in this process. */
export function startDispatchWorker(
  config: Config,
  logger: Logger,
): DispatchWorkerHandle {
  const database = createDatabase({
    databaseUrl: config.databaseUrl,
    poolMax: config.databasePoolMax,
    applicationName: 'webhook-dispatch',
  });
  const prisma = database.prisma;
  const queueConnection = workerConnection(config);
  const queues = openQueues(queueConnection, config);
  // Without a listener BullMQ prints each connection error to stderr as a
  // multi-line stack, outside the JSON log; the worker's own 'error' event
  // already logs the outage.
  queues.dispatch.on('error', () => {});
  for (const queue of queues.delivery.shards) queue.on('error', () => {});
  const workerRedis = workerConnection(config);

  const worker = new Worker<DispatchJobData>(
    DISPATCH_QUEUE,
    countActiveJobs('dispatch', config.dispatchConcurrency, async (job) => {
      if (job.name === RESEND_PAGE_JOB) {
        const data = job.data as unknown as Partial<ResendPageJobData> | undefined;
        if (typeof data?.resendBatchId !== 'string' || typeof data.step !== 'number') {
          throw new UnrecoverableError(`job ${job.id} has no resendBatchId and step in its data`);
        }
        const outcome = await runResendPage(
          {
            pool: database.pool,
            dispatchQueue: queues.dispatch,
            deliveryQueues: queues.delivery,
            logger,
            pageSize: config.resendPageSize,
          },
          data.resendBatchId,
          data.step,
        );
        return outcome.kind;
      }
      const eventId = job.data?.eventId;
      if (typeof eventId !== 'string') {
        throw new UnrecoverableError(`job ${job.id} has no eventId in its data`);
      }
      const outcome = await dispatchEvent(
        { pool: database.pool, deliveryQueues: queues.delivery, logger },
        eventId,
      );
      const log = logger.child({ eventId });
      if (outcome.kind === 'not_found') {
        log.warn('event not found; dropping its dispatch job');
      } else if (outcome.kind === 'dispatched') {
        log.info(
          { numDispatched: outcome.numDispatched },
          'event dispatched',
        );
      } else {
        log.info(
          { requeued: outcome.deliveryIds.length },
          'event was already dispatched; re-enqueued its pending deliveries',
        );
      }
      return outcome.kind;
    }),
    {
      connection: workerRedis,
      prefix: queueKeyPrefix(config, DISPATCH_QUEUE),
      telemetry: queueTelemetry(),
      concurrency: config.dispatchConcurrency,
      lockDuration: config.jobLockDurationMs,
      stalledInterval: config.stalledIntervalMs,
    },
  );
  worker.on('failed', (job, error) => {
    if (job?.name === RESEND_PAGE_JOB) {
      const data = job.data as unknown as Partial<ResendPageJobData> | undefined;
      logger.error(
        { resendBatchId: data?.resendBatchId, step: data?.step, attemptsMade: job.attemptsMade, err: error },
        'resend page job failed',
      );
      return;
    }
    logger.error(
      { eventId: job?.data?.eventId, attemptsMade: job?.attemptsMade, err: error },
      'dispatch job failed',
    );
  });
  worker.on('error', (error) => logger.error({ err: error }, 'dispatch worker error'));
  countDispatchOutcomes(worker);
  // A worker that never reached Redis cannot have fetched a job, so closing
  // it with force loses nothing and keeps BullMQ from waiting for a
  // connection while Redis is down.
  let workerReady = false;
  worker.once('ready', () => {
    workerReady = true;
  });

  const sweeper = new Sweeper({
    prisma,
    dispatchQueue: queues.dispatch,
    deliveryQueues: queues.delivery,
    logger: logger.child({ component: 'sweeper' }),
    graceMs: config.sweepGraceMs,
    leaseTimeoutMs: config.leaseTimeoutMs,
    intervalMs: config.sweepIntervalMs,
  });
  sweeper.start();
  const retention = startRetention(config, {
    pool: database.pool,
    dispatchQueue: queues.dispatch,
    logger: logger.child({ component: 'retention' }),
  });
  const resendSweeper = new ResendSweeper({
    pool: database.pool,
    dispatchQueue: queues.dispatch,
    logger: logger.child({ component: 'resend-sweeper' }),
    graceMs: config.sweepGraceMs,
    intervalMs: config.sweepIntervalMs,
  });
  resendSweeper.start();
  logger.info(
    { concurrency: config.dispatchConcurrency, sweepIntervalMs: config.sweepIntervalMs },
    'dispatch worker started',
  );

  let closing: Promise<void> | undefined;
  return {
    sweeper,
    close() {
      closing ??= (async () => {
        const limits = closeStepLimits(config.shutdownGraceMs, 20_000);
        await runCloseSteps(
          [
            { name: 'stopping the sweeper', run: () => sweeper.stop() },
            { name: 'stopping the retention job', run: async () => retention?.stop() },
            { name: 'stopping the resend sweeper', run: () => resendSweeper.stop() },
            {
              name: 'closing the dispatch worker',
              run: () => worker.close(!workerReady),
              timeoutMs: limits.jobStepMs,
              onTimeout: () => void worker.close(true).catch(() => {}),
            },
            { name: 'closing the dispatch queue', run: () => queues.dispatch.close() },
            { name: 'closing the delivery queues', run: () => queues.delivery.close() },
            { name: 'closing the queue connection', run: () => closeRedisConnection(queueConnection) },
            { name: 'closing the worker connection', run: () => closeRedisConnection(workerRedis) },
            { name: 'closing PostgreSQL', run: () => database.close() },
          ],
          logger,
          limits.otherStepMs,
        );
        logger.info('dispatch worker stopped');
      })();
      return closing;
    },
  };
}

import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';

/** Queue of event ids waiting to be turned into deliveries. */
export const DISPATCH_QUEUE = 'dispatch';
/** Queue of delivery ids waiting for an HTTP attempt. */
export const DELIVERY_QUEUE = 'delivery';

/** Job data of the dispatch queue; the BullMQ job id is the event id. */
export interface DispatchJobData {
  eventId: string;
}

/** Job data of the delivery queue; the BullMQ job id is the delivery id. */
export interface DeliveryJobData {
  deliveryId: string;
}

/**
 * Options of every job we add. Jobs carry ids only, because PostgreSQL holds
 * the payloads, and finished jobs are removed so that Redis stays small:
 * the attempt rows are the record. Failed jobs stay a week for Bull Board.
 */
export const JOB_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** Options of the dispatch job of one event; the job id is the event id. */
export function dispatchJobOptions(eventId: string): JobsOptions {
  return {
    ...JOB_OPTIONS,
    jobId: eventId,
    attempts: 5,
    backoff: { type: 'exponential', delay: 1_000 },
  };
}

/**
 * Options of the delivery job of one delivery; the job id is the delivery id.
 * The delivery row, not the job, counts HTTP attempts against the budget, so
 * the job gets spare attempts for failures that send nothing (a database
 * outage, a lease held by another worker). Its backoff is computed by the
 * delivery worker.
 */
export function deliveryJobOptions(deliveryId: string): JobsOptions {
  return {
    ...JOB_OPTIONS,
    jobId: deliveryId,
    attempts: 50,
    backoff: { type: 'delivery' },
  };
}

/**
 * Options of a connection that a worker blocks on: BullMQ requires
 * `maxRetriesPerRequest: null` there, so that commands wait out a Redis
 * restart instead of failing.
 */
export function workerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { maxRetriesPerRequest: null });
}

/**
 * Options of a connection used to add jobs from a request path. Commands
 * fail at once while Redis is down, so that a publish returns instead of
 * hanging; the event row is already committed and the sweeper enqueues it.
 */
export function producerConnectionOptions(): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  };
}

export function producerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, producerConnectionOptions());
}

/** Opens the dispatch and delivery queues on one connection. */
export function openQueues(connection: ConnectionOptions, prefix: string) {
  return {
    dispatch: new Queue<DispatchJobData>(DISPATCH_QUEUE, {
      connection,
      prefix,
    }),
    delivery: new Queue<DeliveryJobData>(DELIVERY_QUEUE, {
      connection,
      prefix,
    }),
  };
}

export type Queues = ReturnType<typeof openQueues>;

/** Rejects with `label` timed out when `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, label: string) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label} timed out after ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

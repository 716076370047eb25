import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from './config.js';
import { queueTelemetry } from './ops/tracing.js';

/** Queue of event ids waiting to be turned into deliveries. */
export const DISPATCH_QUEUE = 'dispatch';
/**
 * Queue of delivery ids waiting for an HTTP attempt. With more than one
 * shard this is the stem of the shard names `delivery-0`, `delivery-1`, ...
 */
export const DELIVERY_QUEUE = 'delivery';

/** A connection to one Redis server or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** The settings that choose between one Redis server and a Redis Cluster. */
export type RedisSettings = Pick<Config, 'redisUrl' | 'redisClusterNodes'>;

/** The settings that decide queue names and key prefixes. */
export type QueueSettings = Pick<
  Config,
  'queuePrefix' | 'redisClusterNodes' | 'deliveryQueueShards'
>;

/**
 * Returns the BullMQ prefix of one queue. BullMQ names every key of a queue
 * `<prefix>:<queue>:<suffix>`, and its Lua scripts touch several of them in
 * one call, so on a Redis Cluster all keys of a queue must hash to one slot.
 * In cluster mode the prefix is the hash tag `{<QUEUE_PREFIX>:<queue>}`: each
 * queue gets a slot of its own, so that the queues spread over the masters.
 * On one Redis server the prefix stays QUEUE_PREFIX, so that an upgrade keeps
 * the key names, and with them the jobs, of a running install.
 */
export function queueKeyPrefix(settings: QueueSettings, queueName: string): string {
  if (settings.redisClusterNodes.length === 0) return settings.queuePrefix;
  return `{${settings.queuePrefix}:${queueName}}`;
}

/**
 * Returns a SCAN pattern that matches every key of this install's queues,
 * for cleanup scripts: `<QUEUE_PREFIX>:*` on one server, or
 * `{<QUEUE_PREFIX>:*` on each master of a cluster.
 */
export function queueKeyPattern(settings: QueueSettings): string {
  if (settings.redisClusterNodes.length === 0) return `${settings.queuePrefix}:*`;
  return `{${settings.queuePrefix}:*`;
}

/**
 * Returns the names of the delivery queues: `delivery` for one shard, so
 * that an install without shards keeps its queue, else `delivery-0` to
 * `delivery-<shards - 1>`.
 */
export function deliveryQueueNames(shards: number): string[] {
  if (shards === 1) return [DELIVERY_QUEUE];
  return Array.from({ length: shards }, (_, index) => `${DELIVERY_QUEUE}-${index}`);
}

/** Returns the 32-bit FNV-1a hash of the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Returns the delivery shard of a receiver: the FNV-1a hash of its id in
 * lowercase text, modulo the number of shards. Every process computes the
 * same shard from the same id and DELIVERY_QUEUE_SHARDS, so all deliveries
 * of one receiver go to one queue. A hash of the whole text, not the first
 * bytes of the uuid, keeps the spread even for ids whose first bytes are a
 * timestamp (uuid v7).
 */
export function deliveryShardOf(rxId: string, shards: number): number {
  return fnv1a32(rxId.toLowerCase()) % shards;
}

/**
 * Splits a process's delivery concurrency over its shard workers, so that
 * the total stays `total`: the first `total % shards` workers get one more.
 * Each worker gets at least 1, so with fewer than `shards` slots the total
 * is `shards` instead.
 */
export function shardConcurrency(total: number, shards: number): number[] {
  const base = Math.floor(total / shards);
  const extra = total % shards;
  return Array.from({ length: shards }, (_, index) =>
    Math.max(1, base + (index < extra ? 1 : 0)),
  );
}

/** Job data of the dispatch queue; the BullMQ job id is the event id. */
export interface DispatchJobData {
  eventId: string;
}

/** Job data of the delivery queue; the BullMQ job id is the delivery id. */
export interface DeliveryJobData {
  deliveryId: string;
}

/**
 * Options of every job we add. Jobs carry ids only, because PostgreSQL stores
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
 * Returns the ioredis Cluster options for `nodeOptions`. The user name,
 * password and TLS (`rediss:`) of REDIS_URL apply to every node, so that a
 * cluster with AUTH needs no setting of its own.
 */
export function clusterOptions(
  redisUrl: string,
  nodeOptions: ClusterOptions['redisOptions'],
  options: Omit<ClusterOptions, 'redisOptions'> = {},
): ClusterOptions {
  const url = new URL(redisUrl);
  const credentials: ClusterOptions['redisOptions'] = {};
  if (url.username !== '') credentials.username = decodeURIComponent(url.username);
  if (url.password !== '') credentials.password = decodeURIComponent(url.password);
  if (url.protocol === 'rediss:') credentials.tls = {};
  return { ...options, redisOptions: { ...credentials, ...nodeOptions } };
}

function clusterNodes(settings: RedisSettings) {
  return settings.redisClusterNodes.map(({ host, port }) => ({ host, port }));
}

/**
 * Opens a connection that a worker blocks on: BullMQ requires
 * `maxRetriesPerRequest: null` there, so that commands wait out a Redis
 * restart instead of failing. It is a Cluster when REDIS_CLUSTER_NODES is set.
 */
export function workerConnection(settings: RedisSettings): RedisClient {
  if (settings.redisClusterNodes.length > 0) {
    return new Cluster(
      clusterNodes(settings),
      clusterOptions(settings.redisUrl, { maxRetriesPerRequest: null }),
    );
  }
  return new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
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

/**
 * Opens a connection with producerConnectionOptions() and `extra` on top, a
 * Cluster when REDIS_CLUSTER_NODES is set.
 */
export function producerConnection(
  settings: RedisSettings,
  extra: RedisOptions = {},
): RedisClient {
  const options = { ...producerConnectionOptions(), ...extra };
  if (settings.redisClusterNodes.length > 0) {
    const { enableOfflineQueue, retryStrategy, ...nodeOptions } = options;
    return new Cluster(
      clusterNodes(settings),
      clusterOptions(settings.redisUrl, nodeOptions, {
        enableOfflineQueue,
        clusterRetryStrategy: retryStrategy,
      }),
    );
  }
  return new Redis(settings.redisUrl, options);
}

/** Opens the dispatch queue with the key prefix of `settings`. */
export function openDispatchQueue(
  connection: ConnectionOptions,
  settings: QueueSettings,
): Queue<DispatchJobData> {
  return new Queue<DispatchJobData>(DISPATCH_QUEUE, {
    connection,
    prefix: queueKeyPrefix(settings, DISPATCH_QUEUE),
    // Carries the trace context into the job when tracing runs.
    telemetry: queueTelemetry(),
  });
}

/**
 * The delivery queues, one per shard. Every command goes to one shard's
 * queue, so on a cluster no command spans two hash slots.
 */
export class DeliveryQueues {
  /** The queue of each shard, in shard order. */
  readonly shards: readonly Queue<DeliveryJobData>[];

  constructor(connection: ConnectionOptions, settings: QueueSettings) {
    this.shards = deliveryQueueNames(settings.deliveryQueueShards).map(
      (name) =>
        new Queue<DeliveryJobData>(name, {
          connection,
          prefix: queueKeyPrefix(settings, name),
          telemetry: queueTelemetry(),
        }),
    );
  }

  /** Returns the queue that contains the jobs of a receiver's deliveries. */
  forReceiver(rxId: string): Queue<DeliveryJobData> {
    return this.shards[deliveryShardOf(rxId, this.shards.length)]!;
  }

  /** Closes every shard's queue, and throws the first error after all have closed. */
  async close(): Promise<void> {
    const results = await Promise.allSettled(this.shards.map((queue) => queue.close()));
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
  }
}

/** Opens the dispatch queue and the delivery queues on one connection. */
export function openQueues(connection: ConnectionOptions, settings: QueueSettings) {
  return {
    dispatch: openDispatchQueue(connection, settings),
    delivery: new DeliveryQueues(connection, settings),
  };
}

export type Queues = ReturnType<typeof openQueues>;

/** Returns the dispatch queue and every delivery queue, such as for Bull Board. */
export function allQueues(queues: Queues): Queue[] {
  return [queues.dispatch, ...queues.delivery.shards];
}

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

import { Cluster, type Redis } from 'ioredis';
import pg from 'pg';
import { Publisher } from '../../producers/publish.js';
import { ReceiverService } from '../../producers/receivers.js';
import { loadConfig, type Config } from '../../shared/config.js';
import { createDatabase } from '../../shared/db/client.js';
import { createLogger } from '../../shared/logger.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import {
  openDispatchQueue,
  producerConnection,
  queueKeyPattern,
  workerConnection,
} from '../../shared/queues.js';
import { WorkerFleet } from './fleet.js';
import {
  planEvents,
  planReceivers,
  type PlannedEvent,
  type ScheduledDisruption,
} from './plan.js';
import { SeededRandom } from './random.js';
import { ChaosReceiver } from './receiver.js';
import { buildReport, type ChaosReport } from './report.js';
import type { WorkerRole } from './worker-process.js';

/**
 * Worker settings of a chaos run: short timeouts, leases, retries and
 * sweeps, so that work held by a killed worker comes back within seconds.
 */
export const CHAOS_WORKER_SETTINGS: Record<string, string> = {
  ALLOWED_PRIVATE_NETWORKS: '127.0.0.0/8',
  CONNECT_TIMEOUT_MS: '2000',
  ATTEMPT_TIMEOUT_MS: '5000',
  LEASE_TIMEOUT_MS: '10000',
  RETRY_SCHEDULE_MS: '500,1000,2000',
  SWEEP_INTERVAL_MS: '2000',
  SWEEP_GRACE_MS: '3000',
  JOB_LOCK_DURATION_MS: '5000',
  STALLED_INTERVAL_MS: '2000',
  SHUTDOWN_GRACE_MS: '15000',
  DATABASE_POOL_MAX: '4',
  LOG_LEVEL: 'info',
};

export interface ChaosSettings {
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  events: number;
  receivers: number;
  workers: Record<WorkerRole, number>;
  /** Events published per second. */
  publishRate: number;
  disruptions: readonly ScheduledDisruption[];
  /** How long to wait for every delivery to finish after publishing, in ms. */
  drainTimeoutMs: number;
  seed: number;
  /** Settings of the worker processes on top of CHAOS_WORKER_SETTINGS. */
  workerSettings?: Record<string, string>;
  /** Receives every worker log line. */
  writeLog?: (text: string) => void;
  /** Receives progress and disruption messages. */
  onProgress?: (text: string) => void;
  /** Aborting stops publishing, disrupting and waiting; the run then cleans up and throws. */
  signal?: AbortSignal;
}

/** Events published at once at most; the rate limit applies on top. */
const PUBLISH_CONCURRENCY = 8;
const DRAIN_POLL_MS = 500;
const PROGRESS_EVERY_MS = 5_000;

/**
 * Runs the system under chaos: starts the worker fleet and a verifying
 * receiver, publishes the planned events while it kills workers and
 * flushes Redis as scheduled, waits for every delivery to finish, and
 * returns the report. Every process it started has exited when it returns
 * or throws.
 */
export async function runChaos(settings: ChaosSettings): Promise<ChaosReport> {
  const started = performance.now();
  const log = settings.onProgress ?? (() => {});
  const random = new SeededRandom(settings.seed);
  const environment: NodeJS.ProcessEnv = {
    ...process.env,
    ...CHAOS_WORKER_SETTINGS,
    ...settings.workerSettings,
    DATABASE_URL: settings.databaseUrl,
    REDIS_URL: settings.redisUrl,
    QUEUE_PREFIX: settings.queuePrefix,
  };
  const config = loadConfig(environment);
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 2 });
    cleanups.push(() => pool.end());
    const database = createDatabase({
      databaseUrl: config.databaseUrl,
      poolMax: PUBLISH_CONCURRENCY,
      applicationName: 'webhook-chaos',
    });
    cleanups.push(() => database.close());
    const connection = producerConnection(config);
    connection.on('error', () => {});
    cleanups.push(async () => connection.disconnect());
    const dispatchQueue = openDispatchQueue(connection, config);
    dispatchQueue.on('error', () => {});
    cleanups.push(() => dispatchQueue.close());

    const receiver = new ChaosReceiver(new SeededRandom(settings.seed + 1));
    await receiver.start();
    cleanups.push(() => receiver.stop());
    const plans = planReceivers(settings.receivers);
    const service = new ReceiverService(database.prisma, new NetworkGuard(config.allowedPrivateNetworks));
    const receiverIds: string[] = [];
    for (const [index, plan] of plans.entries()) {
      const created = await service.create({
        name: plan.name,
        endpoint: receiver.url(index),
        subscriptions: plan.subscriptions,
      });
      receiver.register(index, plan.behaviour, created.secret);
      receiverIds.push(created.receiver.id);
    }

    const fleet = new WorkerFleet(settings.workers, environment, settings.writeLog);
    cleanups.push(() => fleet.stop());
    await fleet.start();
    log(`${settings.workers.dispatch} dispatch and ${settings.workers.delivery} delivery workers started`);

    const events = planEvents(settings.events, random);
    const publisher = new Publisher({
      prisma: database.prisma,
      dispatchQueue,
      logger: createLogger('chaos', 'silent'),
      maxPayloadBytes: config.maxPayloadBytes,
    });
    const publishing = publishAll(publisher, events, settings.publishRate, settings.signal);
    let lastDisruptionAt = performance.now();
    let flushedKeys = 0;
    const disrupting = (async () => {
      const start = performance.now();
      for (const { atMs, disruption } of settings.disruptions) {
        await sleep(start + atMs - performance.now(), settings.signal);
        throwIfAborted(settings.signal);
        if (disruption.kind === 'flush') {
          flushedKeys += await deleteQueueKeys(config);
          lastDisruptionAt = performance.now();
          log(`flushed Redis: deleted ${flushedKeys} keys matching ${queueKeyPattern(config)}`);
        } else {
          const done = fleet.disrupt(disruption.signal, random, disruption.role);
          if (done !== null) lastDisruptionAt = performance.now();
          log(done ?? `no running worker for ${disruption.signal}; skipped`);
        }
      }
    })();
    const [published] = await Promise.all([publishing, disrupting]);
    log(`published ${published.ids.size} of ${events.length} events; waiting for the deliveries`);

    const drainedAt = await waitForDrain(pool, published.ids.size, settings, log);
    const drainAfterLastDisruptionMs =
      drainedAt === null ? null : Math.max(0, drainedAt - lastDisruptionAt);

    // The final stop is part of the checks: every worker must exit 0.
    await fleet.stop();
    return await buildReport(pool, {
      events,
      publishedIds: published.ids,
      publishErrors: published.errors,
      receivers: plans,
      receiverIds,
      requests: receiver.requests,
      fleet: fleet.stats,
      flushedKeys,
      drainAfterLastDisruptionMs,
      durationMs: performance.now() - started,
    });
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`error while cleaning up: ${String(error)}`);
      }
    }
  }
}

/** Publishes every event at `rate` per second; returns the ids that succeeded. */
async function publishAll(
  publisher: Publisher,
  events: readonly PlannedEvent[],
  rate: number,
  signal: AbortSignal | undefined,
): Promise<{ ids: Set<string>; errors: number }> {
  const ids = new Set<string>();
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const lane = async () => {
    while (next < events.length) {
      const index = next++;
      await sleep(start + (index * 1000) / rate - performance.now(), signal);
      throwIfAborted(signal);
      const event = events[index]!;
      try {
        await publisher.publishEvent({ id: event.id, eventClass: event.eventClass, data: event.data });
        ids.add(event.id);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: PUBLISH_CONCURRENCY }, lane));
  return { ids, errors };
}

/**
 * Waits until PostgreSQL contains at least `published` events, none of them
 * undispatched, and no unfinished delivery. Returns performance.now() at
 * that moment, or null after the drain timeout.
 */
async function waitForDrain(
  pool: pg.Pool,
  published: number,
  settings: ChaosSettings,
  log: (text: string) => void,
): Promise<number | null> {
  const deadline = performance.now() + settings.drainTimeoutMs;
  let lastProgress = 0;
  for (;;) {
    throwIfAborted(settings.signal);
    const { rows } = await pool.query<{
      events: number;
      undispatched: number;
      deliveries: number;
      pending: number;
    }>(`SELECT
          (SELECT count(*) FROM webhook_event)::int AS events,
          (SELECT count(*) FROM webhook_event WHERE time_dispatched IS NULL)::int AS undispatched,
          (SELECT count(*) FROM webhook_delivery)::int AS deliveries,
          (SELECT count(*) FROM webhook_delivery WHERE time_completed IS NULL)::int AS pending`);
    const state = rows[0]!;
    if (state.events >= published && state.undispatched === 0 && state.pending === 0) {
      return performance.now();
    }
    if (performance.now() > deadline) {
      log(`gave up waiting after ${settings.drainTimeoutMs} ms`);
      return null;
    }
    if (performance.now() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = performance.now();
      log(
        `events ${state.events} (undispatched ${state.undispatched}), deliveries ${state.deliveries} (unfinished ${state.pending})`,
      );
    }
    await sleep(DRAIN_POLL_MS, settings.signal);
  }
}

/**
 * Deletes every key of this install's queues with SCAN and DEL, on each
 * master of a cluster. This is what a Redis flush means for one install:
 * FLUSHALL would also delete the data of everything else on that Redis.
 */
export async function deleteQueueKeys(config: Config): Promise<number> {
  const client = workerConnection(config);
  client.on('error', () => {});
  try {
    const servers: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
    let deleted = 0;
    for (const server of servers) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', queueKeyPattern(config), 'COUNT', 1000);
        // One DEL per key, since the keys of a cluster's queues sit in
        // different slots, sent together as a pipeline.
        const pipeline = server.pipeline();
        for (const key of keys) pipeline.del(key);
        for (const [error, count] of (await pipeline.exec()) ?? []) {
          if (error) throw error;
          deleted += Number(count);
        }
        cursor = next;
      } while (cursor !== '0');
    }
    return deleted;
  } finally {
    client.disconnect();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new Error('chaos run interrupted');
}

// Runs the whole pipeline on a Redis Cluster of six local redis-server
// processes (three masters, three replicas) that this file starts on
// loopback ports and removes again, with the delivery queue split into
// shards. It checks the delivery results, that every key of a queue hashes
// to one slot, that the shards spread over more than one master, that no
// command failed with a cluster redirection or cross-slot error, and that
// every delivery finishes after one master fails over to its replica. A bulk
// redeliver of one receiver's failed deliveries runs through the cluster too.
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import {
  DISPATCH_QUEUE,
  deliveryQueueNames,
  deliveryShardOf,
  openQueues,
  queueKeyPrefix,
  workerConnection,
  type Queues,
  type RedisClient,
} from '../shared/queues.js';
import { startDeliveryWorker, type DeliveryWorkerHandle } from '../workers/delivery/delivery-worker.js';
import { startDispatchWorker, type DispatchWorkerHandle } from '../workers/dispatch/dispatch-worker.js';
import { expectConsistentAttempts } from './helpers/delivery-assertions.js';
import { ReceiverHarness } from './helpers/receiver-harness.js';
import {
  LocalRedisCluster,
  redisCli,
  redisClusterUnavailable,
  type ClusterNode,
} from './helpers/redis-cluster.js';
import { createReceiver, publishEvent } from './helpers/system-fixture.js';
import { startSystem, type RunningSystem } from './helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from './helpers/test-env.js';

const SHARDS = 8;
const EVENTS = 200;
/** Matches the errors of a command sent to the wrong node or across slots. */
const SLOT_ERROR = /\b(CROSSSLOT|MOVED|ASK)\b/;

const unavailable = redisClusterUnavailable();
if (unavailable !== null) console.warn(`skipping the Redis Cluster tests: ${unavailable}`);

/**
 * Creates a logger that keeps only what the checks need: the first lines
 * that contain a slot error, their count, and every message text. A run that
 * logs an error in a loop therefore cannot fill the memory.
 */
function watchLogs(): {
  logger: Logger;
  slotErrors: string[];
  counts: { slotErrors: number };
  messages: Set<string>;
} {
  const slotErrors: string[] = [];
  const counts = { slotErrors: 0 };
  const messages = new Set<string>();
  const logger = pino(
    { level: 'info', base: { role: 'test' } },
    {
      write(line: string) {
        if (SLOT_ERROR.test(line)) {
          counts.slotErrors += 1;
          if (slotErrors.length < 10) slotErrors.push(line.slice(0, 2_000));
        }
        const message = (JSON.parse(line) as { msg?: unknown }).msg;
        if (typeof message === 'string') messages.add(message);
      },
    },
  );
  return { logger, slotErrors, counts, messages };
}

/** Returns the master that serves each slot, from CLUSTER SLOTS on one node. */
async function slotOwners(node: ClusterNode): Promise<(slot: number) => number | undefined> {
  const redis = new Redis({ host: node.host, port: node.port, lazyConnect: true });
  try {
    await redis.connect();
    const ranges = await redis.cluster('SLOTS');
    return (slot) => ranges.find(([start, end]) => slot >= start && slot <= end)?.[2]?.[1];
  } finally {
    redis.disconnect();
  }
}

async function keySlot(port: number, key: string): Promise<number> {
  return Number((await redisCli(port, 'CLUSTER', 'KEYSLOT', key)).trim());
}

/** Returns the queue name in a key `{<prefix>:<queue>}:<queue>:...`, or null. */
function queueOfKey(key: string, prefix: string): string | null {
  const match = /^\{([^}]*)\}/.exec(key);
  if (match === null || !match[1]!.startsWith(`${prefix}:`)) return null;
  return match[1]!.slice(prefix.length + 1);
}

describe.skipIf(unavailable !== null)(`pipeline on Redis Cluster with ${SHARDS} delivery shards`, () => {
  const cluster = unavailable === null ? new LocalRedisCluster() : undefined;
  const logs = watchLogs();
  let masters: ClusterNode[];
  let env: TestEnv;
  let config: Config;
  let system: RunningSystem | undefined;
  let secondDispatch: DispatchWorkerHandle | undefined;
  let secondDelivery: DeliveryWorkerHandle | undefined;
  let connection: RedisClient | undefined;
  let queues: Queues | undefined;
  const receivers: Record<'A' | 'B' | 'C', { harness: ReceiverHarness; id: string }> = {} as never;
  let clusterStartMs = 0;

  beforeAll(async () => {
    const started = performance.now();
    await cluster!.start();
    clusterStartMs = performance.now() - started;
    masters = await cluster!.masters();
    env = await createTestEnv();

    // The slot of a queue follows from its hash tag, and so from the random
    // prefix. A prefix that would put all shards on one master is skipped,
    // so that the spread check below tests the key layout, not chance.
    const ownerOf = await slotOwners(masters[0]!);
    let queuePrefix = env.queuePrefix;
    for (let attempt = 1; ; attempt++) {
      const owners = new Set<number | undefined>();
      for (const name of deliveryQueueNames(SHARDS)) {
        owners.add(ownerOf(await keySlot(masters[0]!.port, `{${queuePrefix}:${name}}`)));
      }
      if (owners.size > 1) break;
      queuePrefix = `${env.queuePrefix}-${attempt}`;
    }

    const seenByB = new Set<string>();
    const responders = {
      A: () => ({ status: 200 }),
      B: (request: { headers: Record<string, unknown> }) => {
        const webhookId = String(request.headers['webhook-id']);
        if (seenByB.has(webhookId)) return { status: 200 };
        seenByB.add(webhookId);
        return { status: 500 };
      },
      C: () => ({ status: 500 }),
    };

    const overrides = {
      REDIS_CLUSTER_NODES: masters.map((node) => `${node.host}:${node.port}`).join(','),
      QUEUE_PREFIX: queuePrefix,
      DELIVERY_QUEUE_SHARDS: String(SHARDS),
      // Four attempts: the first and three retries.
      RETRY_SCHEDULE_MS: '200,400,400',
      // A fail-over can lose the lock of a running job. BullMQ gives such a
      // job back within max(lock, interval) + interval, 10 s with these.
      JOB_LOCK_DURATION_MS: '5000',
      STALLED_INTERVAL_MS: '5000',
      DELIVERY_CONCURRENCY: '20',
      // Bulk resends in pages of 64, so that redelivering C's failures
      // takes several page jobs on the cluster.
      RESEND_PAGE_SIZE: '64',
    };
    system = await startSystem(env, { overrides, logger: logs.logger });
    config = system.config;
    secondDispatch = startDispatchWorker(config, logs.logger);
    secondDelivery = startDeliveryWorker(config, logs.logger);
    connection = workerConnection(config);
    queues = openQueues(connection, config);

    for (const name of ['A', 'B', 'C'] as const) {
      const harness = await new ReceiverHarness(responders[name]).start();
      const created = await createReceiver(system, {
        name: `cluster-${name}`,
        endpoint: harness.url(),
        subscriptions: ['test.*'],
      });
      receivers[name] = { harness, id: created.id };
    }
  }, 120_000);

  afterAll(async () => {
    // Each step gets a time limit, so that a step that hangs cannot keep the
    // cluster running. The steps that ran over are reported at the end.
    const overran: string[] = [];
    const step = async (name: string, run: () => Promise<unknown> | undefined) => {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), 30_000);
      });
      const outcome = await Promise.race([Promise.resolve(run()).catch(() => 'failed'), limit]);
      clearTimeout(timer);
      if (outcome === 'timeout') overran.push(name);
    };
    try {
      await step('closing the test queues', () => queues?.dispatch.close());
      await step('closing the test delivery queues', () => queues?.delivery.close());
      await step('closing the test connection', () => connection?.quit());
      await step('stopping the API and first workers', () => system?.stop());
      await step('stopping the second dispatch worker', () => secondDispatch?.close());
      await step('stopping the second delivery worker', () => secondDelivery?.close());
      for (const receiver of Object.values(receivers)) await receiver.harness.stop();
    } finally {
      await cluster?.stop();
      await env?.dispose();
    }
    console.info(`Redis Cluster of 6 nodes started in ${Math.round(clusterStartMs)} ms`);
    expect(overran, 'teardown steps that took more than 30 s').toEqual([]);
  }, 240_000);

  async function attemptRows(rxId: string): Promise<Record<string, number>> {
    const { rows } = await env.pool.query<{ key: string; count: number }>(
      `SELECT attempt || ' ' || result || ' ' || coalesce(response_status::text, '-') AS key,
         count(*)::int AS count
       FROM webhook_delivery_attempt WHERE rx_id = $1 GROUP BY 1`,
      [rxId],
    );
    return Object.fromEntries(rows.map((row) => [row.key, row.count]));
  }

  async function deliveryStates(rxId: string): Promise<Record<string, number>> {
    const { rows } = await env.pool.query<{ key: string; count: number }>(
      `SELECT state || ' after ' || attempts AS key, count(*)::int AS count
       FROM webhook_delivery WHERE rx_id = $1 GROUP BY 1`,
      [rxId],
    );
    return Object.fromEntries(rows.map((row) => [row.key, row.count]));
  }

  test('delivers every event', async () => {
    const published: string[] = [];
    for (let start = 0; start < EVENTS; start += 20) {
      const batch = Array.from({ length: Math.min(20, EVENTS - start) }, (_, index) =>
        publishEvent(system!, 'test.c', { n: start + index }),
      );
      published.push(...(await Promise.all(batch)));
    }
    expect(published).toHaveLength(EVENTS);

    await waitFor(
      async () => {
        const { rows } = await env.pool.query<{ finished: number }>(
          `SELECT count(*)::int AS finished FROM webhook_delivery WHERE time_completed IS NOT NULL`,
        );
        return rows[0]!.finished >= EVENTS * 3;
      },
      { timeoutMs: 90_000, intervalMs: 250, message: `${EVENTS * 3} finished deliveries` },
    );

    const { rows } = await env.pool.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM webhook_delivery`,
    );
    expect(rows[0]!.count).toBe(EVENTS * 3);
    expect(await deliveryStates(receivers.A.id)).toEqual({ 'delivered after 1': EVENTS });
    expect(await attemptRows(receivers.A.id)).toEqual({ '1 succeeded 200': EVENTS });
    expect(await deliveryStates(receivers.B.id)).toEqual({ 'delivered after 2': EVENTS });
    expect(await attemptRows(receivers.B.id)).toEqual({
      '1 failed_http_error 500': EVENTS,
      '2 succeeded 200': EVENTS,
    });
    expect(await deliveryStates(receivers.C.id)).toEqual({ 'failed after 4': EVENTS });
    expect(await attemptRows(receivers.C.id)).toEqual({
      '1 failed_http_error 500': EVENTS,
      '2 failed_http_error 500': EVENTS,
      '3 failed_http_error 500': EVENTS,
      '4 failed_http_error 500': EVENTS,
    });
    expect(receivers.A.harness.requests).toHaveLength(EVENTS);
    expect(receivers.B.harness.requests).toHaveLength(EVENTS * 2);
    expect(receivers.C.harness.requests).toHaveLength(EVENTS * 4);
    await expectConsistentAttempts(env.pool);
  }, 120_000);

  test('redelivers C in bulk', async () => {
    const requestsBefore = receivers.C.harness.requests.length;
    const created = await system!.request('POST', '/v1/resends', {
      receiver: 'cluster-C',
      state: 'failed',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const done = await waitFor(
      async () => {
        const response = await system!.request('GET', `/v1/resends/${created.body.id}`);
        const body = response.body as { state: string; deliveries: { failed: number } };
        return body.state !== 'running' && body.deliveries.failed === EVENTS ? response.body : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, message: `${EVENTS} resends to C to fail` },
    );
    expect(done.state).toBe('completed');
    expect(done.num_matched).toBe(EVENTS);
    expect(done.num_created).toBe(EVENTS);
    expect(done.deliveries).toEqual({ pending: 0, delivered: 0, failed: EVENTS });

    // C still responds with 500, so each resend makes its 4 attempts: 200 more
    // first POSTs, each with a webhook-id of its own.
    const resent = receivers.C.harness.requests.slice(requestsBefore);
    const firstTries = resent.filter((request) => request.headers['x-webhook-attempt'] === '1');
    expect(firstTries).toHaveLength(EVENTS);
    expect(new Set(firstTries.map((request) => request.headers['webhook-id'])).size).toBe(EVENTS);
    expect(resent).toHaveLength(EVENTS * 4);
    expect(await deliveryStates(receivers.C.id)).toEqual({ 'failed after 4': EVENTS * 2 });
    expect(receivers.A.harness.requests).toHaveLength(EVENTS);
    expect(receivers.B.harness.requests).toHaveLength(EVENTS * 2);
    await expectConsistentAttempts(env.pool);
    expect(logs.slotErrors).toEqual([]);
  }, 120_000);

  test('keeps each queue in one slot', async () => {
    const slotsByQueue = new Map<string, Set<number>>();
    const mastersByQueue = new Map<string, Set<number>>();
    const untagged: string[] = [];
    for (const master of masters) {
      const keys = (await redisCli(master.port, '--scan')).split('\n').filter((key) => key !== '');
      for (const key of keys) {
        const queue = queueOfKey(key, config.queuePrefix);
        if (queue === null) {
          untagged.push(key);
          continue;
        }
        const slot = await keySlot(master.port, key);
        if (!slotsByQueue.has(queue)) slotsByQueue.set(queue, new Set());
        if (!mastersByQueue.has(queue)) mastersByQueue.set(queue, new Set());
        slotsByQueue.get(queue)!.add(slot);
        mastersByQueue.get(queue)!.add(master.port);
      }
    }
    expect(untagged, 'keys without the {<prefix>:<queue>} hash tag').toEqual([]);
    const expectedQueues = [DISPATCH_QUEUE, ...deliveryQueueNames(SHARDS)].sort();
    expect([...slotsByQueue.keys()].sort()).toEqual(expectedQueues);
    for (const [queue, slots] of slotsByQueue) {
      expect(slots.size, `slots of queue ${queue}`).toBe(1);
      expect(mastersByQueue.get(queue)!.size, `masters of queue ${queue}`).toBe(1);
    }

    const shardMasters = new Set(
      deliveryQueueNames(SHARDS).flatMap((name) => [...mastersByQueue.get(name)!]),
    );
    expect(shardMasters.size, 'masters that hold delivery shards').toBeGreaterThan(1);
  });

  test('reports no slot errors', async () => {
    expect(logs.slotErrors).toEqual([]);
    expect(logs.counts.slotErrors).toBe(0);
    for (const queue of [queues!.dispatch, ...queues!.delivery.shards]) {
      const failed = await queue.getFailed();
      const reasons = failed.map((job) => job.failedReason).filter((reason) => SLOT_ERROR.test(reason));
      expect(reasons, `failed jobs of ${queue.name}`).toEqual([]);
    }
  });

  test('Bull Board lists every queue', async () => {
    // The board returns 503 when Redis takes longer than its deadline, which
    // a loaded machine can cause; a later request must then succeed.
    const response = await waitFor(async () => {
      const answer = await system!.request('GET', `${config.bullBoardPath}/api/queues`);
      return answer.status === 503 ? undefined : answer;
    }, { timeoutMs: 15_000, message: 'Bull Board queue list without 503' });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const listed = response.body.queues as { name: string; counts: Record<string, number> }[];
    const expectedQueues = [DISPATCH_QUEUE, ...deliveryQueueNames(SHARDS)].sort();
    expect(listed.map((queue) => queue.name).sort()).toEqual(expectedQueues);
    for (const queue of [queues!.dispatch, ...queues!.delivery.shards]) {
      const counts = listed.find((entry) => entry.name === queue.name)?.counts;
      expect(counts, `Bull Board counts of ${queue.name}`).toEqual(await queue.getJobCounts());
    }
  });

  test('sweeper re-enqueues into shards', async () => {
    // Puts ten finished deliveries of A and of B back to pending, with no
    // job and old enough for the sweeper, which runs every second.
    const { rows } = await env.pool.query<{ id: string }>(
      `UPDATE webhook_delivery SET state = 'pending', time_completed = NULL,
         time_created = now() - interval '30 seconds'
       WHERE id IN (
         (SELECT id FROM webhook_delivery WHERE rx_id = $1 ORDER BY id LIMIT 10)
         UNION ALL
         (SELECT id FROM webhook_delivery WHERE rx_id = $2 ORDER BY id LIMIT 10))
       RETURNING id::text`,
      [receivers.A.id, receivers.B.id],
    );
    expect(rows).toHaveLength(20);
    const ids = rows.map((row) => row.id);
    await waitFor(
      async () => {
        const finished = await env.pool.query<{ count: number }>(
          `SELECT count(*)::int AS count FROM webhook_delivery
           WHERE id = ANY($1::uuid[]) AND state = 'delivered'`,
          [ids],
        );
        return finished.rows[0]!.count === ids.length;
      },
      { timeoutMs: 30_000, message: 'the 20 re-enqueued deliveries to be delivered' },
    );
    expect(receivers.A.harness.requests).toHaveLength(EVENTS + 10);
    expect(receivers.B.harness.requests).toHaveLength(EVENTS * 2 + 10);
    await expectConsistentAttempts(env.pool);
    expect(logs.slotErrors).toEqual([]);
    expect(logs.messages.has('sweep re-enqueued work'), 'a sweep log line').toBe(true);
  }, 60_000);
  // Runs last, because it stops a master for good.
  test('survives a master fail-over', async () => {
    const ownerOf = await slotOwners(masters[0]!);
    const shardOfA = deliveryQueueNames(SHARDS)[deliveryShardOf(receivers.A.id, SHARDS)]!;
    const victim = ownerOf(
      await keySlot(masters[0]!.port, `{${config.queuePrefix}:${shardOfA}}`),
    )!;
    const survivor = masters.find((node) => node.port !== victim)!;
    const before = await env.pool.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM webhook_delivery`,
    );

    const publishing = (async () => {
      for (let index = 0; index < 100; index++) {
        await publishEvent(system!, 'test.c', { failover: index });
      }
    })();
    await waitFor(async () => receivers.A.harness.requests.length >= EVENTS + 10 + 20, {
      timeoutMs: 30_000,
      message: 'deliveries to A before the fail-over',
    });
    await redisCli(victim, 'SHUTDOWN', 'NOSAVE').catch(() => '');
    await waitFor(
      async () => {
        const current = await cluster!.masters();
        const info = await redisCli(survivor.port, 'CLUSTER', 'INFO');
        return current.length === 3 && !current.some((node) => node.port === victim) &&
          info.includes('cluster_state:ok');
      },
      { timeoutMs: 30_000, intervalMs: 200, message: `a replica to replace master ${victim}` },
    );
    const failedOverAt = Date.now();
    await publishing;

    const expected = before.rows[0]!.count + 300;
    await waitFor(
      async () => {
        const { rows } = await env.pool.query<{ total: number; finished: number }>(
          `SELECT count(*)::int AS total,
             count(*) FILTER (WHERE time_completed IS NOT NULL)::int AS finished
           FROM webhook_delivery`,
        );
        return rows[0]!.total === expected && rows[0]!.finished === expected;
      },
      { timeoutMs: 60_000, intervalMs: 250, message: `${expected} finished deliveries after the fail-over` },
    );
    const drainMs = Date.now() - failedOverAt;
    console.info(`deliveries finished ${drainMs} ms after the fail-over of master ${victim}`);
    expect(drainMs).toBeLessThanOrEqual(60_000);

    // At least once: a POST may repeat, but each one has its attempt row.
    for (const name of ['A', 'B', 'C'] as const) {
      const { rows } = await env.pool.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM webhook_delivery_attempt WHERE rx_id = $1`,
        [receivers[name].id],
      );
      expect(receivers[name].harness.requests.length, `POSTs to ${name}`).toBe(rows[0]!.count);
    }
    // EVENTS from the first run, EVENTS from the bulk redeliver and 100 now.
    expect(await deliveryStates(receivers.C.id)).toEqual({ 'failed after 4': EVENTS * 2 + 100 });
    await expectConsistentAttempts(env.pool);
    expect(logs.slotErrors.filter((line) => line.includes('CROSSSLOT'))).toEqual([]);
  }, 150_000);
});

describe('braced QUEUE_PREFIX on a cluster', () => {
  test('stops the worker with exit code 2', async () => {
    // The configuration check fails before any connection is opened.
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/delivery/main.ts'], {
      env: {
        ...process.env,
        REDIS_CLUSTER_NODES: '127.0.0.1:7000',
        QUEUE_PREFIX: '{whk}',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const started = performance.now();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    // Generous for a loaded machine, yet far below a connection retry loop.
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([
      'invalid configuration: QUEUE_PREFIX: must not contain "{" or "}" when REDIS_CLUSTER_NODES is set, because every queue gets its own hash tag such as "{whk:dispatch}"; got "{whk}", use "whk"',
    ]);
  });
});

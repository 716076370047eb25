// Redis dies mid-run and comes back empty, as a restart without persistence
// leaves it. The worker processes ride out the outage, the API keeps taking
// events, and the sweeper rebuilds the queues from PostgreSQL. The Redis here
// is a redis-server that the test starts on its own loopback port.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectConsistentAttempts } from '../helpers/delivery-assertions.js';
import { PrivateRedis, redisServerUnavailable } from '../helpers/private-redis.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createReceiver, publishEvent } from '../helpers/system-fixture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import {
  formatLines,
  useWorkerProcesses,
  workerEnvironment,
  type TestWorker,
} from '../helpers/worker-processes.js';

const unavailable = redisServerUnavailable();

/** Short sweeps and leases, so that the rebuilt queues fill within seconds. */
const SETTINGS = {
  SWEEP_INTERVAL_MS: '1000',
  SWEEP_GRACE_MS: '1000',
  ATTEMPT_TIMEOUT_MS: '2000',
  LEASE_TIMEOUT_MS: '3000',
  JOB_LOCK_DURATION_MS: '2000',
  STALLED_INTERVAL_MS: '1000',
  SHUTDOWN_GRACE_MS: '10000',
};

const BEFORE_OUTAGE = 20;
const DURING_OUTAGE = 10;
const RECEIVERS = 2;

let env: TestEnv;
let redis: PrivateRedis;
let system: RunningSystem;
let harness: ReceiverHarness;
const workers = useWorkerProcesses();
let dispatch: TestWorker;
let delivery: TestWorker;

beforeAll(async () => {
  if (unavailable !== null) return;
  env = await createTestEnv();
  redis = await PrivateRedis.start();
  const overrides = { ...SETTINGS, REDIS_URL: redis.url };
  // The API runs in this process; the workers run as their own processes.
  system = await startSystem(env, { dispatch: false, delivery: false, overrides });
  harness = await new ReceiverHarness().start();
  dispatch = await workers.start('dispatch', workerEnvironment(env, overrides));
  delivery = await workers.start('delivery', workerEnvironment(env, overrides));
});

afterAll(async () => {
  await system?.stop();
  await harness?.stop();
  await redis?.kill();
  await env?.dispose();
});

async function countFinished(): Promise<number> {
  const { rows } = await env.pool.query<{ finished: number }>(
    `SELECT count(*)::int AS finished FROM webhook_delivery WHERE time_completed IS NOT NULL`,
  );
  return rows[0]!.finished;
}

describe.skipIf(unavailable !== null)('Redis restarted empty', () => {
  test('every event still delivered once', async () => {
    for (let index = 0; index < RECEIVERS; index++) {
      await createReceiver(system, {
        name: `restart-rx-${index}`,
        endpoint: harness.url(`/rx/${index}`),
        subscriptions: ['restart.*'],
      });
    }
    const eventIds: string[] = [];
    for (let n = 0; n < BEFORE_OUTAGE; n++) eventIds.push(await publishEvent(system, 'restart.before', { n }));
    await waitFor(async () => (await countFinished()) >= RECEIVERS * 5, {
      message: 'some deliveries to finish before the outage',
    });

    await redis.kill();
    // Publishing still succeeds: the row is the commit point.
    for (let n = 0; n < DURING_OUTAGE; n++) eventIds.push(await publishEvent(system, 'restart.during', { n }));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await redis.restart();

    const expected = eventIds.length * RECEIVERS;
    await waitFor(async () => (await countFinished()) === expected, {
      timeoutMs: 45_000,
      message: `all ${expected} deliveries to finish after the restart`,
    });

    const { rows } = await env.pool.query<{ event_id: string; rows: number; delivered: number }>(
      `SELECT event_id::text, count(*)::int AS rows,
         count(*) FILTER (WHERE state = 'delivered')::int AS delivered
       FROM webhook_delivery GROUP BY event_id`,
    );
    expect(rows).toHaveLength(eventIds.length);
    for (const row of rows) {
      expect(row.rows, `delivery rows of event ${row.event_id}`).toBe(RECEIVERS);
      expect(row.delivered, `delivered rows of event ${row.event_id}`).toBe(RECEIVERS);
    }
    await expectConsistentAttempts(env.pool);
    const webhookIds = new Set(harness.requests.map((request) => request.headers['webhook-id']));
    expect(webhookIds.size).toBe(expected);

    // Neither worker crashed during the outage, and both stop cleanly.
    expect(dispatch.process.isRunning, formatLines(dispatch.lines)).toBe(true);
    expect(delivery.process.isRunning, formatLines(delivery.lines)).toBe(true);
    expect((await dispatch.process.stop()).code, formatLines(dispatch.lines)).toBe(0);
    expect((await delivery.process.stop()).code, formatLines(delivery.lines)).toBe(0);
  });
});

describe.skipIf(unavailable !== null)('Redis down at shutdown', () => {
  test('connected workers exit 0', async () => {
    const overrides = { ...SETTINGS, REDIS_URL: redis.url };
    const before = await redis.clientCount();
    const idleDispatch = await workers.start('dispatch', workerEnvironment(env, overrides));
    const idleDelivery = await workers.start('delivery', workerEnvironment(env, overrides));
    // Each worker has logged that it started; its connections open just after.
    // The dispatch worker opens 3 (queues, worker, blocking) and the delivery
    // worker 2 (worker, blocking).
    await waitFor(async () => (await redis.clientCount()) >= before + 5, {
      message: 'both workers to connect to Redis',
    });
    await redis.kill();
    try {
      const signalledAt = performance.now();
      idleDispatch.process.signal('SIGTERM');
      idleDelivery.process.signal('SIGTERM');
      const [dispatchStatus, deliveryStatus] = await Promise.all([
        idleDispatch.process.exited,
        idleDelivery.process.exited,
      ]);
      expect(dispatchStatus.code, formatLines(idleDispatch.lines)).toBe(0);
      expect(deliveryStatus.code, formatLines(idleDelivery.lines)).toBe(0);
      const graceMs = Number(SETTINGS.SHUTDOWN_GRACE_MS);
      expect(dispatchStatus.at - signalledAt).toBeLessThan(graceMs);
      expect(deliveryStatus.at - signalledAt).toBeLessThan(graceMs);
    } finally {
      await redis.restart();
    }
  });

  test('never-connected worker exits 0', async () => {
    const overrides = { ...SETTINGS, REDIS_URL: redis.url };
    await redis.kill();
    try {
      const worker = await workers.start('delivery', workerEnvironment(env, overrides));
      const signalledAt = performance.now();
      worker.process.signal('SIGTERM');
      const status = await worker.process.exited;
      expect(status.code, formatLines(worker.lines)).toBe(0);
      expect(status.at - signalledAt).toBeLessThan(Number(SETTINGS.SHUTDOWN_GRACE_MS));
    } finally {
      await redis.restart();
    }
  });
});

import { randomUUID } from 'node:crypto';
import { UnrecoverableError, Worker, type Queue } from 'bullmq';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import {
  DELIVERY_QUEUE,
  openQueues,
  workerConnection,
  type DeliveryJobData,
  type Queues,
  type RedisClient,
} from '../../shared/queues.js';
import { createLogger } from '../../shared/logger.js';
import { Sweeper } from '../../workers/dispatch/sweeper.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: RunningSystem;
let sweeper: Sweeper;
let harness: ReceiverHarness;
let connection: RedisClient;
let queues: Queues;
let deliveryQueue: Queue<DeliveryJobData>;

beforeAll(async () => {
  env = await createTestEnv();
  // The sweeper's timer is set to an hour, so only the sweepOnce() calls
  // below run it and their counts are exact. Its grace period of 10 s leaves
  // fresh rows alone even on a slow machine, and the tests age a row by 30 s
  // to have it swept. The dispatch worker takes the dispatch jobs. No
  // delivery worker runs, so delivery jobs stay queued and the harness gets
  // no request.
  system = await startSystem(env, {
    delivery: false,
    overrides: { SWEEP_INTERVAL_MS: '3600000', SWEEP_GRACE_MS: '10000' },
  });
  sweeper = system.dispatch!.sweeper;
  harness = await new ReceiverHarness().start();
  connection = workerConnection(env.config());
  queues = openQueues(connection, env.config());
  // The test config has one delivery shard.
  deliveryQueue = queues.delivery.shards[0]!;
});

afterAll(async () => {
  await queues?.dispatch.close();
  await queues?.delivery.close();
  await connection?.quit();
  await system?.stop();
  await harness?.stop();
  await env?.dispose();
});

// Each test starts with no unfinished work, so that sweepOnce() counts only
// what the test set up.
beforeEach(async () => {
  await env.pool.query(
    `UPDATE webhook_delivery SET state = 'failed', time_completed = now(),
       failure_reason = 'closed between tests'
     WHERE time_completed IS NULL`,
  );
  await env.pool.query(
    `UPDATE webhook_event SET time_dispatched = now() WHERE time_dispatched IS NULL`,
  );
  await env.pool.query(`UPDATE webhook_rx SET time_deleted = now() WHERE time_deleted IS NULL`);
  await deliveryQueue.obliterate({ force: true });
});

async function createReceiver(name: string, subscriptions: string[]): Promise<string> {
  const response = await system.request('POST', '/v1/receivers', {
    name,
    endpoint: harness.url(),
    subscriptions,
  });
  expect(response.status).toBe(201);
  return response.body.id;
}

/** Inserts an event as a producer that could not reach Redis leaves it. */
async function insertEvent(eventClass: string, ageSeconds: number): Promise<string> {
  const id = randomUUID();
  await env.pool.query(
    `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
     VALUES ($1, $2, '{"swept":true}', now() - make_interval(secs => $3),
             now() - make_interval(secs => $3))`,
    [id, eventClass, ageSeconds],
  );
  return id;
}

async function waitForDispatch(eventId: string) {
  return waitFor(
    async () => {
      const { rows } = await env.pool.query(
        `SELECT time_dispatched, num_dispatched FROM webhook_event WHERE id = $1`,
        [eventId],
      );
      return rows[0]?.time_dispatched !== null ? rows[0] : undefined;
    },
    { message: `event ${eventId} to be dispatched` },
  );
}

/** Publishes an event and returns its delivery once the worker made it. */
async function pendingDelivery(eventClass: string): Promise<string> {
  const published = await system.request('POST', '/v1/events', {
    event_class: eventClass,
    data: {},
  });
  expect(published.status).toBe(202);
  return waitFor(
    async () => {
      const { rows } = await env.pool.query(
        `SELECT id::text FROM webhook_delivery WHERE event_id = $1`,
        [published.body.id],
      );
      return rows[0]?.id as string | undefined;
    },
    { message: `a delivery of ${published.body.id}` },
  );
}

async function ageDelivery(deliveryId: string, seconds = 30) {
  await env.pool.query(
    `UPDATE webhook_delivery SET time_created = time_created - make_interval(secs => $2)
     WHERE id = $1`,
    [deliveryId, seconds],
  );
}

describe('sweeper events', () => {
  test('dispatches event past grace', async () => {
    const rxId = await createReceiver('swept-rx', ['swept.*']);
    const eventId = await insertEvent('swept.ping', 30);
    expect(await queues.dispatch.getJob(eventId)).toBeUndefined();

    expect(await sweeper.sweepOnce()).toEqual({ events: 1, deliveries: 0 });

    const event = await waitForDispatch(eventId);
    expect(event.num_dispatched).toBe(1);
    const { rows } = await env.pool.query(
      `SELECT rx_id::text, state::text FROM webhook_delivery WHERE event_id = $1`,
      [eventId],
    );
    expect(rows).toEqual([{ rx_id: rxId, state: 'pending' }]);
  });

  test('leaves event within grace', async () => {
    const eventId = await insertEvent('fresh.ping', 0);
    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 0 });
    expect(await queues.dispatch.getJob(eventId)).toBeUndefined();

    await env.pool.query(
      `UPDATE webhook_event SET time_created = time_created - interval '30 seconds'
       WHERE id = $1`,
      [eventId],
    );
    expect(await sweeper.sweepOnce()).toEqual({ events: 1, deliveries: 0 });
    const event = await waitForDispatch(eventId);
    expect(event.num_dispatched).toBe(0);
  });

  test('keeps event whose job waits', async () => {
    await queues.dispatch.pause();
    let eventId: string;
    try {
      eventId = await insertEvent('waiting.ping', 30);
      expect(await sweeper.sweepOnce()).toEqual({ events: 1, deliveries: 0 });
      expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 0 });
      const job = await queues.dispatch.getJob(eventId);
      expect(job?.data).toEqual({ eventId });
    } finally {
      await queues.dispatch.resume();
    }
    await waitForDispatch(eventId);
  });

  test('counts several events', async () => {
    const ids = [
      await insertEvent('many.a', 30),
      await insertEvent('many.b', 20),
      await insertEvent('many.c', 15),
    ];
    expect(await sweeper.sweepOnce()).toEqual({ events: 3, deliveries: 0 });
    for (const id of ids) await waitForDispatch(id);
  });
});

describe('sweeper deliveries', () => {
  test('requeues delivery whose job vanished', async () => {
    await createReceiver('vanished-rx', ['vanished.*']);
    const deliveryId = await pendingDelivery('vanished.ping');
    expect(await deliveryQueue.remove(deliveryId)).toBe(1);
    await ageDelivery(deliveryId);

    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 1 });
    const job = await deliveryQueue.getJob(deliveryId);
    expect(job?.data).toEqual({ deliveryId });
    expect(await deliveryQueue.getWaitingCount()).toBe(1);

    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 0 });
    expect(await deliveryQueue.getWaitingCount()).toBe(1);
  });

  test('keeps delivery whose job exists', async () => {
    await createReceiver('present-rx', ['present.*']);
    const deliveryId = await pendingDelivery('present.ping');
    await ageDelivery(deliveryId);
    const job = await deliveryQueue.getJob(deliveryId);
    expect(job?.data).toEqual({ deliveryId });

    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 0 });
    expect(await deliveryQueue.getWaitingCount()).toBe(1);
    expect((await deliveryQueue.getJob(deliveryId))?.timestamp).toBe(job?.timestamp);
  });

  test('leaves delivery within grace', async () => {
    await createReceiver('young-rx', ['young.*']);
    const deliveryId = await pendingDelivery('young.ping');
    expect(await deliveryQueue.remove(deliveryId)).toBe(1);
    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 0 });
    expect(await deliveryQueue.getJob(deliveryId)).toBeUndefined();
  });

  test('requeues delivery whose job failed', async () => {
    await createReceiver('failed-rx', ['failed.*']);
    const deliveryId = await pendingDelivery('failed.ping');
    const failing = new Worker(
      DELIVERY_QUEUE,
      async () => {
        throw new UnrecoverableError('failed on purpose');
      },
      { connection: workerConnection(env.config()), prefix: env.queuePrefix },
    );
    try {
      await waitFor(
        async () => (await deliveryQueue.getJob(deliveryId))?.failedReason === 'failed on purpose',
        { message: 'the delivery job to fail' },
      );
    } finally {
      await failing.close();
    }
    await ageDelivery(deliveryId);

    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 1 });
    const job = await deliveryQueue.getJob(deliveryId);
    expect(await job?.getState()).toBe('waiting');
    expect(job?.attemptsMade).toBe(0);
  });

  test('skips delivery under lease', async () => {
    await createReceiver('leased-rx', ['leased.*']);
    const deliveryId = await pendingDelivery('leased.ping');
    expect(await deliveryQueue.remove(deliveryId)).toBe(1);
    await ageDelivery(deliveryId);
    await env.pool.query(
      `UPDATE webhook_delivery SET deliverator_id = 'test-worker', time_leased = now()
       WHERE id = $1`,
      [deliveryId],
    );
    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 0 });

    // The test config's lease timeout is twice ATTEMPT_TIMEOUT_MS, 4 s.
    await env.pool.query(
      `UPDATE webhook_delivery SET time_leased = now() - interval '60 seconds' WHERE id = $1`,
      [deliveryId],
    );
    expect(await sweeper.sweepOnce()).toEqual({ events: 0, deliveries: 1 });
    expect((await deliveryQueue.getJob(deliveryId))?.data).toEqual({ deliveryId });
  });

  test('counts events and deliveries', async () => {
    await createReceiver('mixed-rx', ['mixed.*']);
    const first = await pendingDelivery('mixed.one');
    const second = await pendingDelivery('mixed.two');
    for (const id of [first, second]) {
      expect(await deliveryQueue.remove(id)).toBe(1);
      await ageDelivery(id);
    }
    await insertEvent('unmatched.a', 30);
    await insertEvent('unmatched.b', 30);

    expect(await sweeper.sweepOnce()).toEqual({ events: 2, deliveries: 2 });
  });
});

describe('sweeper batches', () => {
  // A second sweeper on the same queues that reads two rows per run.
  function smallBatchSweeper() {
    return new Sweeper({
      prisma: env.prisma,
      dispatchQueue: queues.dispatch,
      deliveryQueues: queues.delivery,
      logger: createLogger('test', 'silent'),
      graceMs: 1_000,
      leaseTimeoutMs: 4_000,
      intervalMs: 1_000,
      batchSize: 2,
    });
  }

  // A time 30 s ago with a microsecond part. Every row set to it shares it,
  // as the rows written by one transaction share now().
  const SHARED_TIME = `date_trunc('second', now()) - interval '30 seconds' + interval '123456 microseconds'`;

  test('reaches events past first batch', async () => {
    const small = smallBatchSweeper();
    await queues.dispatch.pause();
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    try {
      await env.pool.query(
        `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
         SELECT id, 'batch.event', '{}', ${SHARED_TIME}, now() FROM unnest($1::uuid[]) AS id`,
        [ids],
      );
      const counts: number[] = [];
      for (let run = 0; run < 3; run += 1) counts.push((await small.sweepOnce()).events);
      expect(counts).toEqual([2, 1, 0]);
      for (const id of ids) {
        expect((await queues.dispatch.getJob(id))?.data).toEqual({ eventId: id });
      }
    } finally {
      await queues.dispatch.resume();
    }
    for (const id of ids) await waitForDispatch(id);
  });

  test('reaches deliveries past first batch', async () => {
    const small = smallBatchSweeper();
    for (const name of ['batch-a', 'batch-b', 'batch-c']) {
      await createReceiver(name, ['batch.delivery']);
    }
    const published = await system.request('POST', '/v1/events', {
      event_class: 'batch.delivery',
      data: {},
    });
    const deliveryIds = await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `SELECT id::text FROM webhook_delivery WHERE event_id = $1`,
          [published.body.id],
        );
        return rows.length === 3 ? rows.map((row) => row.id as string) : undefined;
      },
      { message: 'three deliveries of one event' },
    );
    for (const id of deliveryIds) expect(await deliveryQueue.remove(id)).toBe(1);
    await env.pool.query(
      `UPDATE webhook_delivery SET time_created = ${SHARED_TIME} WHERE event_id = $1`,
      [published.body.id],
    );

    const counts: number[] = [];
    for (let run = 0; run < 3; run += 1) counts.push((await small.sweepOnce()).deliveries);
    expect(counts).toEqual([2, 1, 0]);
    for (const id of deliveryIds) {
      expect((await deliveryQueue.getJob(id))?.data).toEqual({ deliveryId: id });
    }
  });
});

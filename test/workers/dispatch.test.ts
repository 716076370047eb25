import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ReceiverService } from '../../producers/receivers.js';
import { createLogger } from '../../shared/logger.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import {
  DISPATCH_QUEUE,
  dispatchJobOptions,
  openQueues,
  workerConnection,
  type DeliveryJobData,
  type Queues,
  type RedisClient,
} from '../../shared/queues.js';
import { dispatchEvent } from '../../workers/dispatch/dispatch-event.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let harness: ReceiverHarness;
let connection: RedisClient;
let queues: Queues;
let deliveryQueue: Queue<DeliveryJobData>;
let receivers: ReceiverService;

beforeAll(async () => {
  env = await createTestEnv();
  // Receivers point at this harness, but no delivery worker runs in this
  // file, so it never gets a request.
  harness = await new ReceiverHarness().start();
  connection = workerConnection(env.config());
  queues = openQueues(connection, env.config());
  // The test config has one delivery shard.
  deliveryQueue = queues.delivery.shards[0]!;
  receivers = new ReceiverService(env.prisma, new NetworkGuard(['127.0.0.0/8']));
});

afterAll(async () => {
  await queues?.dispatch.close();
  await queues?.delivery.close();
  await connection?.quit();
  await harness?.stop();
  await env?.dispose();
});

// Each test starts without live receivers, so that a `**` subscription of
// one test does not match the events of another.
beforeEach(async () => {
  await env.pool.query(`UPDATE webhook_rx SET time_deleted = now() WHERE time_deleted IS NULL`);
});

function dispatch(eventId: string) {
  return dispatchEvent(
    { pool: env.pool, deliveryQueues: queues.delivery, logger: createLogger('test', 'silent') },
    eventId,
  );
}

async function insertEvent(eventClass: string): Promise<string> {
  const id = randomUUID();
  await env.pool.query(
    `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
     VALUES ($1, $2, '{}', now(), now())`,
    [id, eventClass],
  );
  return id;
}

async function createReceiver(name: string, subscriptions: string[]): Promise<string> {
  const created = await receivers.create({ name, endpoint: harness.url(), subscriptions });
  return created.receiver.id;
}

async function deliveriesOf(eventId: string) {
  const { rows } = await env.pool.query(
    `SELECT id::text, rx_id::text, triggered_by::text, state::text, attempts, time_completed
     FROM webhook_delivery WHERE event_id = $1 ORDER BY rx_id`,
    [eventId],
  );
  return rows;
}

async function eventRow(eventId: string) {
  const { rows } = await env.pool.query(
    `SELECT time_dispatched, num_dispatched FROM webhook_event WHERE id = $1`,
    [eventId],
  );
  return rows[0];
}

describe('dispatchEvent fan-out', () => {
  test('creates one delivery per match', async () => {
    const matching = [
      await createReceiver('exact', ['orders.created']),
      await createReceiver('one-segment', ['orders.*']),
      await createReceiver('any-depth', ['**']),
      await createReceiver('orders-subtree', ['orders.**']),
      await createReceiver('two-patterns', ['orders.*', '*.created']),
    ];
    await createReceiver('bare-star', ['*']);
    await createReceiver('other-prefix', ['billing.*']);
    await createReceiver('deeper-only', ['orders.created.**']);
    await createReceiver('parent-only', ['orders']);
    await createReceiver('other-case', ['Orders.created']);
    const deleted = await createReceiver('deleted', ['orders.created']);
    await receivers.delete(deleted);

    const eventId = await insertEvent('orders.created');
    const outcome = await dispatch(eventId);

    expect(outcome.kind).toBe('dispatched');
    if (outcome.kind !== 'dispatched') return;
    expect(outcome.numDispatched).toBe(5);
    expect(outcome.deliveryIds).toHaveLength(5);

    const deliveries = await deliveriesOf(eventId);
    expect(deliveries.map((d) => d.rx_id)).toEqual([...matching].sort());
    expect(deliveries.map((d) => d.id).sort()).toEqual([...outcome.deliveryIds].sort());
    for (const delivery of deliveries) {
      expect(delivery.triggered_by).toBe('event');
      expect(delivery.state).toBe('pending');
      expect(delivery.attempts).toBe(0);
      expect(delivery.time_completed).toBeNull();
    }

    const event = await eventRow(eventId);
    expect(event.time_dispatched).toBeInstanceOf(Date);
    expect(event.num_dispatched).toBe(5);

    for (const deliveryId of outcome.deliveryIds) {
      const job = await deliveryQueue.getJob(deliveryId);
      expect(job?.data).toEqual({ deliveryId });
    }
  });

  test('single-segment class matches star', async () => {
    const matching = [
      await createReceiver('star', ['*']),
      await createReceiver('globstar', ['**']),
      await createReceiver('exact-ping', ['ping']),
    ];
    await createReceiver('ping-children', ['ping.**']);
    const eventId = await insertEvent('ping');
    const outcome = await dispatch(eventId);
    expect(outcome).toMatchObject({ kind: 'dispatched', numDispatched: 3 });
    expect((await deliveriesOf(eventId)).map((d) => d.rx_id)).toEqual([...matching].sort());
  });

  test('no subscribers dispatches zero', async () => {
    await createReceiver('elsewhere', ['billing.*']);
    const eventId = await insertEvent('orders.cancelled');
    const outcome = await dispatch(eventId);
    expect(outcome).toEqual({ kind: 'dispatched', deliveryIds: [], numDispatched: 0 });
    const event = await eventRow(eventId);
    expect(event.time_dispatched).toBeInstanceOf(Date);
    expect(event.num_dispatched).toBe(0);
    expect(await deliveriesOf(eventId)).toEqual([]);
  });

  test('changed subscriptions apply at once', async () => {
    const id = await createReceiver('moving', ['first.class']);
    await receivers.update(id, { subscriptions: ['second.*'] });
    const before = await insertEvent('first.class');
    const after = await insertEvent('second.class');
    expect(await dispatch(before)).toMatchObject({ numDispatched: 0 });
    expect(await dispatch(after)).toMatchObject({ numDispatched: 1 });
  });

  test('unknown event is not_found', async () => {
    expect(await dispatch(randomUUID())).toEqual({ kind: 'not_found' });
  });

  test('malformed event id is not_found', async () => {
    expect(await dispatch('not-a-uuid')).toEqual({ kind: 'not_found' });
  });
});

describe('duplicate dispatch', () => {
  test('second call is already_dispatched', async () => {
    await createReceiver('dup-a', ['dup.*']);
    await createReceiver('dup-b', ['dup.event']);
    const eventId = await insertEvent('dup.event');

    const first = await dispatch(eventId);
    expect(first.kind).toBe('dispatched');
    const dispatchedAt = (await eventRow(eventId)).time_dispatched;
    const waitingBefore = await deliveryQueue.getWaitingCount();

    const second = await dispatch(eventId);
    expect(second.kind).toBe('already_dispatched');
    if (first.kind !== 'dispatched' || second.kind !== 'already_dispatched') return;
    expect([...second.deliveryIds].sort()).toEqual([...first.deliveryIds].sort());

    expect(await deliveriesOf(eventId)).toHaveLength(2);
    const event = await eventRow(eventId);
    expect(event.time_dispatched.getTime()).toBe(dispatchedAt.getTime());
    expect(event.num_dispatched).toBe(2);
    expect(await deliveryQueue.getWaitingCount()).toBe(waitingBefore);
  });

  test('concurrent calls dispatch once', async () => {
    const matching = [
      await createReceiver('race-a', ['race.*']),
      await createReceiver('race-b', ['**']),
    ];
    const eventId = await insertEvent('race.event');

    const outcomes = await Promise.all([1, 2, 3, 4].map(() => dispatch(eventId)));
    const kinds = outcomes.map((outcome) => outcome.kind).sort();
    expect(kinds).toEqual([
      'already_dispatched',
      'already_dispatched',
      'already_dispatched',
      'dispatched',
    ]);
    const deliveries = await deliveriesOf(eventId);
    expect(deliveries.map((d) => d.rx_id)).toEqual([...matching].sort());
    expect((await eventRow(eventId)).num_dispatched).toBe(2);
  });

  test('requeues only pending deliveries', async () => {
    const keep = await createReceiver('requeue-pending', ['requeue.*']);
    const done = await createReceiver('requeue-done', ['requeue.*']);
    const eventId = await insertEvent('requeue.event');
    await dispatch(eventId);
    const deliveries = await deliveriesOf(eventId);
    const pendingId = deliveries.find((d) => d.rx_id === keep).id;
    const deliveredId = deliveries.find((d) => d.rx_id === done).id;

    await env.pool.query(
      `UPDATE webhook_delivery SET state = 'delivered', attempts = 1, time_completed = now()
       WHERE id = $1`,
      [deliveredId],
    );
    expect(await deliveryQueue.remove(pendingId)).toBe(1);
    expect(await deliveryQueue.remove(deliveredId)).toBe(1);

    const outcome = await dispatch(eventId);
    expect(outcome).toEqual({ kind: 'already_dispatched', deliveryIds: [pendingId] });
    expect((await deliveryQueue.getJob(pendingId))?.data).toEqual({ deliveryId: pendingId });
    expect(await deliveryQueue.getJob(deliveredId)).toBeUndefined();
  });
});

describe('dispatch worker', () => {
  let system: RunningSystem;

  beforeAll(async () => {
    system = await startSystem(env, {
      delivery: false,
      // The sweeper stays idle, so that only the jobs below reach the worker.
      overrides: { SWEEP_INTERVAL_MS: '3600000' },
    });
  });

  afterAll(async () => {
    await system?.stop();
  });

  test('dispatches published event', async () => {
    const rxId = await createReceiver('worker-rx', ['worker.*']);
    const published = await system.request('POST', '/v1/events', {
      event_class: 'worker.ping',
      data: { n: 1 },
    });
    expect(published.status).toBe(202);
    const event = await waitFor(
      async () => {
        const row = await eventRow(published.body.id);
        return row.time_dispatched !== null ? row : undefined;
      },
      { message: 'the dispatch worker to dispatch the event' },
    );
    expect(event.num_dispatched).toBe(1);
    expect((await deliveriesOf(published.body.id)).map((d) => d.rx_id)).toEqual([rxId]);
  });

  test.each([randomUUID(), 'not-a-uuid'])(
    'completes job for missing event %s',
    async (eventId) => {
      await queues.dispatch.add(DISPATCH_QUEUE, { eventId }, dispatchJobOptions(eventId));
      // Completed dispatch jobs are removed, and failed ones stay.
      await waitFor(async () => (await queues.dispatch.getJob(eventId)) === undefined, {
        message: `the job of ${eventId} to complete`,
      });
    },
  );

  test('fails job without eventId once', async () => {
    const jobId = randomUUID();
    await queues.dispatch.add(DISPATCH_QUEUE, {} as never, dispatchJobOptions(jobId));
    const job = await waitFor(
      async () => {
        // The job is read again once failed, because a copy read before the
        // failure keeps its old attemptsMade.
        const state = await queues.dispatch.getJobState(jobId);
        return state === 'failed' ? queues.dispatch.getJob(jobId) : undefined;
      },
      { message: 'the job without eventId to fail' },
    );
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toBe(`job ${jobId} has no eventId in its data`);
  });
});

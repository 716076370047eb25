import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PayloadTooLargeError, Publisher } from '../../producers/publish.js';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import { createLogger } from '../../shared/logger.js';
import {
  DISPATCH_QUEUE,
  openQueues,
  producerConnection,
  type DispatchJobData,
  type Queues,
  type RedisClient,
} from '../../shared/queues.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { countRows } from '../helpers/row-counts.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { unusedLoopbackPort } from '../helpers/unused-port.js';

const MAX_PAYLOAD_BYTES = 1024;

let env: TestEnv;
let system: RunningSystem;
let harness: ReceiverHarness;
let connection: RedisClient;
let queues: Queues;
let publisher: Publisher;

beforeAll(async () => {
  env = await createTestEnv();
  // The dispatch worker runs with the test config's sweeper (every 1 s,
  // grace 1 s). No delivery worker runs, so no request leaves the process.
  system = await startSystem(env, { delivery: false });
  harness = await new ReceiverHarness().start();
  connection = producerConnection(env.config());
  queues = openQueues(connection, env.config());
  publisher = new Publisher({
    prisma: env.prisma,
    dispatchQueue: queues.dispatch,
    logger: createLogger('test', 'silent'),
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
  });
});

afterAll(async () => {
  await queues?.dispatch.close();
  await queues?.delivery.close();
  connection?.disconnect();
  await system?.stop();
  await harness?.stop();
  await env?.dispose();
});

async function eventRows(id: string) {
  const { rows } = await env.pool.query(
    `SELECT event_class, event, time_created, time_dispatched, num_dispatched
     FROM webhook_event WHERE id = $1`,
    [id],
  );
  return rows;
}

describe('publishEvent idempotency', () => {
  test('same id stores one event', async () => {
    const id = randomUUID();
    const first = await publisher.publishEvent({ eventClass: 'test.a', data: { n: 1 }, id });
    const second = await publisher.publishEvent({ eventClass: 'test.a', data: { n: 1 }, id });

    expect(first.id).toBe(id);
    expect(second.id).toBe(id);
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.timeCreated.getTime()).toBe(first.timeCreated.getTime());
    expect(first.enqueued).toBe(true);
    expect(second.enqueued).toBe(true);
    const rows = await eventRows(id);
    expect(rows).toHaveLength(1);
    expect(rows[0].event).toBe('{"n":1}');
    expect(rows[0].time_created.getTime()).toBe(first.timeCreated.getTime());
  });

  test('uppercase id matches stored id', async () => {
    const id = randomUUID();
    const first = await publisher.publishEvent({ eventClass: 'test.a', data: 1, id });
    const second = await publisher.publishEvent({
      eventClass: 'test.a',
      data: 1,
      id: id.toUpperCase(),
    });
    expect(second.id).toBe(id);
    expect(second.created).toBe(false);
    expect(second.timeCreated.getTime()).toBe(first.timeCreated.getTime());
  });

  test('concurrent same id stores one', async () => {
    const id = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        publisher.publishEvent({ eventClass: 'test.a', data: { n: 2 }, id }),
      ),
    );
    expect(results.filter((result) => result.created)).toHaveLength(1);
    const times = new Set(results.map((result) => result.timeCreated.getTime()));
    expect(times.size).toBe(1);
    expect(await eventRows(id)).toHaveLength(1);
  });

  test('different data raises ConflictError', async () => {
    const id = randomUUID();
    await publisher.publishEvent({ eventClass: 'test.a', data: { n: 1 }, id });
    const error = await publisher
      .publishEvent({ eventClass: 'test.a', data: { n: 2 }, id })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).statusCode).toBe(409);
    expect((error as ConflictError).message).toBe(
      `event "${id}" was already published with a different event class or data; use a new id`,
    );
    const rows = await eventRows(id);
    expect(rows).toHaveLength(1);
    expect(rows[0].event).toBe('{"n":1}');
  });

  test('different class raises ConflictError', async () => {
    const id = randomUUID();
    await publisher.publishEvent({ eventClass: 'test.a', data: {}, id });
    await expect(
      publisher.publishEvent({ eventClass: 'test.b', data: {}, id }),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await eventRows(id))[0].event_class).toBe('test.a');
  });

  test('API repeats and conflicts by id', async () => {
    const id = randomUUID();
    const first = await system.request('POST', '/v1/events', {
      event_class: 'test.api',
      data: { n: 1 },
      id,
    });
    const again = await system.request('POST', '/v1/events', {
      event_class: 'test.api',
      data: { n: 1 },
      id,
    });
    const changed = await system.request('POST', '/v1/events', {
      event_class: 'test.api',
      data: { n: 2 },
      id,
    });

    expect(first.status).toBe(202);
    expect(first.body.created).toBe(true);
    expect(again.status).toBe(202);
    expect(again.body).toEqual({ ...first.body, created: false });
    expect(changed.status).toBe(409);
    expect(changed.body.error.code).toBe('conflict');
    expect(changed.body.error.message).toBe(
      `event "${id}" was already published with a different event class or data; use a new id`,
    );
    expect(await eventRows(id)).toHaveLength(1);
  });
});

describe('publishEvent validation', () => {
  test('BigInt raises ValidationError', async () => {
    const before = await countRows(env.pool);
    const error = await publisher
      .publishEvent({ eventClass: 'test.a', data: { big: 10n } })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('data.big');
    expect((error as ValidationError).message).toBe(
      'data.big: is a BigInt, which JSON cannot carry exactly; send it as a string',
    );
    expect(await countRows(env.pool)).toEqual(before);

    // The process keeps working after the rejection.
    const next = await publisher.publishEvent({ eventClass: 'test.a', data: { big: '10' } });
    expect(next.created).toBe(true);
  });

  test('nested BigInt names its path', async () => {
    const error = await publisher
      .publishEvent({ eventClass: 'test.a', data: { list: [1, { deep: 2n }] } })
      .catch((caught: unknown) => caught);
    expect((error as ValidationError).field).toBe('data.list[1].deep');
  });

  test('unsafe integer raises ValidationError', async () => {
    const error = await publisher
      .publishEvent({ eventClass: 'test.a', data: { big: 2 ** 53 } })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('data.big');
  });

  test('oversized data raises PayloadTooLargeError', async () => {
    const before = await countRows(env.pool);
    const error = await publisher
      .publishEvent({ eventClass: 'test.a', data: 'x'.repeat(MAX_PAYLOAD_BYTES) })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as PayloadTooLargeError).statusCode).toBe(413);
    expect((error as PayloadTooLargeError).message).toBe(
      `data: must be at most ${MAX_PAYLOAD_BYTES} bytes as JSON (MAX_PAYLOAD_BYTES), got ${MAX_PAYLOAD_BYTES + 2} bytes`,
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('data at the limit is stored', async () => {
    const result = await publisher.publishEvent({
      eventClass: 'test.a',
      data: 'x'.repeat(MAX_PAYLOAD_BYTES - 2),
    });
    expect(result.created).toBe(true);
  });

  test('invalid class names eventClass', async () => {
    const error = await publisher
      .publishEvent({ eventClass: 'foo..bar', data: {} })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('eventClass');
  });

  test('undefined data raises ValidationError', async () => {
    const error = await publisher
      .publishEvent({ eventClass: 'test.a', data: undefined })
      .catch((caught: unknown) => caught);
    expect((error as ValidationError).field).toBe('data');
  });
});

describe('publishEvent without Redis', () => {
  test('stores event then sweeper dispatches', async () => {
    const receiver = await system.request('POST', '/v1/receivers', {
      name: 'offline-rx',
      endpoint: harness.url(),
      subscriptions: ['offline.*'],
    });
    expect(receiver.status).toBe(201);

    const port = await unusedLoopbackPort();
    const deadConnection = producerConnection({
      redisUrl: `redis://127.0.0.1:${port}`,
      redisClusterNodes: [],
    });
    const deadQueue = new Queue<DispatchJobData>(DISPATCH_QUEUE, {
      connection: deadConnection,
      prefix: env.queuePrefix,
    });
    // Connection errors are expected here, and without a listener BullMQ prints them.
    deadQueue.on('error', () => {});
    const offline = new Publisher({
      prisma: env.prisma,
      dispatchQueue: deadQueue,
      logger: createLogger('test', 'silent'),
      maxPayloadBytes: MAX_PAYLOAD_BYTES,
    });

    try {
      const started = Date.now();
      const result = await offline.publishEvent({ eventClass: 'offline.ping', data: { n: 1 } });
      const elapsedMs = Date.now() - started;

      expect(elapsedMs).toBeLessThan(3_000);
      expect(result.enqueued).toBe(false);
      expect(result.created).toBe(true);
      // The row is committed before the call returns. Whether it is still
      // undispatched here depends on timing: the sweeper's grace period (1 s)
      // is shorter than the enqueue timeout (2 s).
      const rows = await eventRows(result.id);
      expect(rows).toHaveLength(1);
      expect(rows[0].event_class).toBe('offline.ping');

      const dispatched = await waitFor(
        async () => {
          const [row] = await eventRows(result.id);
          return row?.time_dispatched !== null ? row : undefined;
        },
        { timeoutMs: 15_000, message: 'sweeper to dispatch the stored event' },
      );
      expect(dispatched.num_dispatched).toBe(1);
      const deliveries = await env.pool.query(
        `SELECT rx_id::text FROM webhook_delivery WHERE event_id = $1`,
        [result.id],
      );
      expect(deliveries.rows).toEqual([{ rx_id: receiver.body.id }]);
    } finally {
      deadConnection.disconnect();
      await deadQueue.close().catch(() => {});
    }
  });
});

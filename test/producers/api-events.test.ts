import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dispatchEvent } from '../../workers/dispatch/dispatch-event.js';
import { createLogger } from '../../shared/logger.js';
import {
  openQueues,
  workerConnection,
  type Queues,
  type RedisClient,
} from '../../shared/queues.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let env: TestEnv;
let system: RunningSystem;
let steady: ReceiverHarness;
let flaky: ReceiverHarness;
let connection: RedisClient;
let queues: Queues;

beforeAll(async () => {
  env = await createTestEnv();
  // No dispatch worker: the tests call dispatchEvent themselves, so that an
  // event can be read before and after it is dispatched.
  system = await startSystem(env, { dispatch: false });
  steady = await new ReceiverHarness().start();
  // The flaky receiver fails the first try of every delivery.
  const seen = new Set<string>();
  flaky = await new ReceiverHarness((request) => {
    const webhookId = String(request.headers['webhook-id']);
    if (seen.has(webhookId)) return { status: 200 };
    seen.add(webhookId);
    return { status: 500 };
  }).start();
  connection = workerConnection(env.config());
  queues = openQueues(connection, env.config());

  for (const [name, harness] of [
    ['steady', steady],
    ['flaky', flaky],
  ] as const) {
    const created = await system.request('POST', '/v1/receivers', {
      name,
      endpoint: harness.url(),
      subscriptions: ['shape.*'],
    });
    expect(created.status).toBe(201);
  }
});

afterAll(async () => {
  await queues?.dispatch.close();
  await queues?.delivery.close();
  await connection?.quit();
  await system?.stop();
  await steady?.stop();
  await flaky?.stop();
  await env?.dispose();
});

function dispatch(eventId: string) {
  return dispatchEvent(
    { pool: env.pool, deliveryQueues: queues.delivery, logger: createLogger('test', 'silent') },
    eventId,
  );
}

describe('GET /v1/events/:id', () => {
  test('shows event before dispatch', async () => {
    const published = await system.request('POST', '/v1/events', {
      event_class: 'other.thing',
      data: { list: [1, 'two', null], nested: { ok: true } },
    });
    expect(published.status).toBe(202);
    expect(published.body.time_created).toMatch(ISO_UTC);

    const fetched = await system.request('GET', `/v1/events/${published.body.id}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual({
      id: published.body.id,
      event_class: 'other.thing',
      data: { list: [1, 'two', null], nested: { ok: true } },
      time_created: published.body.time_created,
      time_dispatched: null,
      num_dispatched: 0,
    });
  });

  test('shows event after dispatch', async () => {
    const published = await system.request('POST', '/v1/events', {
      event_class: 'shape.dispatched',
      data: { n: 1 },
    });
    const outcome = await dispatch(published.body.id);
    expect(outcome.kind).toBe('dispatched');

    const fetched = await system.request('GET', `/v1/events/${published.body.id}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.time_created).toBe(published.body.time_created);
    expect(fetched.body.time_dispatched).toMatch(ISO_UTC);
    expect(Date.parse(fetched.body.time_dispatched)).toBeGreaterThanOrEqual(
      Date.parse(fetched.body.time_created),
    );
    expect(typeof fetched.body.num_dispatched).toBe('number');
    expect(fetched.body.num_dispatched).toBe(2);
  });
});

describe('GET /v1/events/:id/deliveries', () => {
  test('lists deliveries with attempt logs', async () => {
    const published = await system.request('POST', '/v1/events', {
      event_class: 'shape.delivered',
      data: { n: 2 },
    });
    await dispatch(published.body.id);

    const listed = await waitFor(
      async () => {
        const response = await system.request(
          'GET',
          `/v1/events/${published.body.id}/deliveries`,
        );
        const states = response.body.deliveries.map((d: { state: string }) => d.state);
        return states.length === 2 && states.every((s: string) => s === 'delivered')
          ? response
          : undefined;
      },
      { message: 'both deliveries to be delivered' },
    );
    expect(listed.status).toBe(200);
    expect(Object.keys(listed.body)).toEqual(['deliveries']);

    const receivers = await system.request('GET', '/v1/receivers');
    const idOf = (name: string) =>
      receivers.body.receivers.find((r: { name: string }) => r.name === name).id;
    const byRx = new Map(
      listed.body.deliveries.map((d: { rx_id: string }) => [d.rx_id, d]),
    );
    const steadyDelivery: any = byRx.get(idOf('steady'));
    const flakyDelivery: any = byRx.get(idOf('flaky'));

    expect(steadyDelivery).toEqual({
      id: expect.any(String),
      event_id: published.body.id,
      rx_id: idOf('steady'),
      triggered_by: 'event',
      state: 'delivered',
      attempts: 1,
      failure_reason: null,
      time_created: expect.stringMatching(ISO_UTC),
      time_completed: expect.stringMatching(ISO_UTC),
      attempt_log: [
        {
          attempt: 1,
          result: 'succeeded',
          response_status: 200,
          response_duration_ms: expect.any(Number),
          response_body: 'ok',
          unreachable_reason: null,
          time_created: expect.stringMatching(ISO_UTC),
        },
      ],
    });

    expect(flakyDelivery.attempts).toBe(2);
    expect(typeof flakyDelivery.attempts).toBe('number');
    expect(Array.isArray(flakyDelivery.attempt_log)).toBe(true);
    expect(
      flakyDelivery.attempt_log.map((a: { attempt: number; result: string; response_status: number }) => [
        a.attempt,
        a.result,
        a.response_status,
      ]),
    ).toEqual([
      [1, 'failed_http_error', 500],
      [2, 'succeeded', 200],
    ]);
    for (const attempt of flakyDelivery.attempt_log) {
      expect(attempt.time_created).toMatch(ISO_UTC);
      expect(typeof attempt.response_duration_ms).toBe('number');
    }
  });

  test('lists no deliveries before dispatch', async () => {
    const published = await system.request('POST', '/v1/events', {
      event_class: 'shape.waiting',
      data: {},
    });
    const listed = await system.request('GET', `/v1/events/${published.body.id}/deliveries`);
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({ deliveries: [] });
  });

  test('shows pending delivery with empty log', async () => {
    const paused = await system.request('POST', '/v1/receivers', {
      name: 'paused-delivery',
      endpoint: steady.url('/paused'),
      subscriptions: ['pending.one'],
    });
    const published = await system.request('POST', '/v1/events', {
      event_class: 'pending.one',
      data: {},
    });
    // Pausing the delivery queue keeps the new delivery pending.
    for (const queue of queues.delivery.shards) await queue.pause();
    try {
      await dispatch(published.body.id);
      const listed = await system.request(
        'GET',
        `/v1/events/${published.body.id}/deliveries`,
      );
      expect(listed.body.deliveries).toHaveLength(1);
      const [delivery] = listed.body.deliveries;
      expect(delivery.rx_id).toBe(paused.body.id);
      expect(delivery.state).toBe('pending');
      expect(delivery.attempts).toBe(0);
      expect(delivery.time_completed).toBeNull();
      expect(delivery.attempt_log).toEqual([]);
    } finally {
      for (const queue of queues.delivery.shards) await queue.resume();
    }
  });
});

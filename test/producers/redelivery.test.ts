import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openQueues, workerConnection } from '../../shared/queues.js';
import { resendPageJobId } from '../../shared/resend-jobs.js';
import { createLogger } from '../../shared/logger.js';
import { startDispatchWorker } from '../../workers/dispatch/dispatch-worker.js';
import { runResendPage } from '../../workers/dispatch/resend-batch.js';
import { expectConsistentAttempts } from '../helpers/delivery-assertions.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent, useSystem, type SystemFixture } from '../helpers/system-fixture.js';
import type { RunningSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/test-env.js';

// TEST_SETTINGS give every delivery 3 attempts 200 and 400 ms apart, so a
// delivery to a receiver that responds with 500 fails within a second.

const FAILING = () => ({ status: 500, body: 'down' });
const OK = () => ({ status: 200, body: 'ok' });

interface DeliveryRow {
  id: string;
  event_id: string;
  rx_id: string;
  triggered_by: string;
  state: string;
  attempts: number;
  resend_batch_id: string | null;
}

async function deliveriesOf(fixture: SystemFixture, rxId: string): Promise<DeliveryRow[]> {
  const { rows } = await fixture.env.pool.query<DeliveryRow>(
    `SELECT id::text, event_id::text, rx_id::text, triggered_by::text, state::text, attempts,
       resend_batch_id::text
     FROM webhook_delivery WHERE rx_id = $1 ORDER BY time_created, id`,
    [rxId],
  );
  return rows;
}

/** Waits until every delivery of the receiver has finished and returns them. */
async function waitForFinished(fixture: SystemFixture, rxId: string, count: number) {
  return waitFor(
    async () => {
      const rows = await deliveriesOf(fixture, rxId);
      return rows.length === count && rows.every((row) => row.state !== 'pending') ? rows : undefined;
    },
    { timeoutMs: 30_000, message: `${count} finished deliveries of receiver ${rxId}` },
  );
}

/** Polls GET /v1/resends/:id until the resend is no longer running. */
async function waitForResend(system: RunningSystem, id: string) {
  return waitFor(
    async () => {
      const response = await system.request('GET', `/v1/resends/${id}`);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      return response.body.state === 'running' ? undefined : response.body;
    },
    { timeoutMs: 30_000, message: `resend ${id} to finish` },
  );
}

async function startHarness(responder = FAILING): Promise<ReceiverHarness> {
  return new ReceiverHarness(responder).start();
}

describe('resend one delivery', () => {
  const fixture = useSystem();
  const harnesses: ReceiverHarness[] = [];
  afterAll(async () => {
    for (const harness of harnesses) await harness.stop();
  });

  async function failedDelivery(name: string) {
    const harness = await startHarness();
    harnesses.push(harness);
    const rx = await createReceiver(fixture.system, {
      name,
      endpoint: harness.url(),
      subscriptions: [`${name}.*`],
    });
    const eventId = await publishEvent(fixture.system, `${name}.created`, { name });
    const [failed] = await waitForFinished(fixture, rx.id, 1);
    expect(failed!.state).toBe('failed');
    expect(failed!.attempts).toBe(3);
    return { harness, rx, eventId, failed: failed! };
  }

  test('resends a failed delivery', async () => {
    const { harness, rx, eventId, failed } = await failedDelivery('one');
    harness.respondWith(OK);

    const response = await fixture.system.request('POST', `/v1/deliveries/${failed.id}/resend`);
    expect(response.status, JSON.stringify(response.body)).toBe(202);
    expect(response.body.id).not.toBe(failed.id);
    expect(response.body.event_id).toBe(eventId);
    expect(response.body.rx_id).toBe(rx.id);
    expect(response.body.triggered_by).toBe('resend');

    const rows = await waitForFinished(fixture, rx.id, 2);
    expect(rows.map((row) => [row.triggered_by, row.state, row.attempts])).toEqual([
      ['event', 'failed', 3],
      ['resend', 'delivered', 1],
    ]);
    const fetched = await fixture.system.request('GET', `/v1/deliveries/${response.body.id}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.state).toBe('delivered');
    expect(fetched.body.attempt_log.map((attempt: { result: string }) => attempt.result)).toEqual([
      'succeeded',
    ]);
    const last = harness.requests[harness.requests.length - 1]!;
    expect(last.headers['webhook-id']).toBe(response.body.id);
    expect(last.headers['x-webhook-event-id']).toBe(eventId);
    expect(JSON.parse(last.body.toString()).data).toEqual({ name: 'one' });
    await expectConsistentAttempts(fixture.env.pool);
  });

  test('resends a delivered delivery', async () => {
    const { harness, rx, failed } = await failedDelivery('twice');
    harness.respondWith(OK);
    const first = await fixture.system.request('POST', `/v1/deliveries/${failed.id}/resend`);
    await waitForFinished(fixture, rx.id, 2);
    const second = await fixture.system.request('POST', `/v1/deliveries/${first.body.id}/resend`);
    expect(second.status, JSON.stringify(second.body)).toBe(202);
    const rows = await waitForFinished(fixture, rx.id, 3);
    expect(rows.map((row) => row.state)).toEqual(['failed', 'delivered', 'delivered']);
  });

  test('resends an event to a new receiver', async () => {
    const eventId = await publishEvent(fixture.system, 'backfill.created', { n: 7 });
    const harness = await startHarness(OK);
    harnesses.push(harness);
    // Created after the event and subscribed to another class, so only the
    // resend reaches it.
    const rx = await createReceiver(fixture.system, {
      name: 'late',
      endpoint: harness.url(),
      subscriptions: ['other.*'],
    });
    const response = await fixture.system.request('POST', `/v1/events/${eventId}/resend`, {
      receiver: 'late',
    });
    expect(response.status, JSON.stringify(response.body)).toBe(202);
    expect(response.body.triggered_by).toBe('resend');
    const rows = await waitForFinished(fixture, rx.id, 1);
    expect(rows[0]!.state).toBe('delivered');
    expect(harness.requests).toHaveLength(1);
    expect(harness.requests[0]!.headers['x-webhook-event-class']).toBe('backfill.created');
  });

  test('deleted receiver gets 409', async () => {
    const { rx, eventId, failed } = await failedDelivery('gone');
    expect((await fixture.system.request('DELETE', `/v1/receivers/${rx.id}`)).status).toBe(204);

    const byDelivery = await fixture.system.request('POST', `/v1/deliveries/${failed.id}/resend`);
    expect(byDelivery.status).toBe(409);
    expect(byDelivery.body.error.code).toBe('conflict');
    expect(byDelivery.body.error.message).toMatch(/^receiver "gone" \(.*\) was deleted at .*; deliveries cannot be resent to a deleted receiver$/);

    const byEvent = await fixture.system.request('POST', `/v1/events/${eventId}/resend`, { receiver: rx.id });
    expect(byEvent.status).toBe(409);
    // A deleted receiver's name is free again, so the name finds nothing.
    const byName = await fixture.system.request('POST', `/v1/events/${eventId}/resend`, { receiver: 'gone' });
    expect(byName.status).toBe(404);
    expect(await deliveriesOf(fixture, rx.id)).toHaveLength(1);
  });

  test('disabled receiver gets 409', async () => {
    const { rx, eventId, failed } = await failedDelivery('paused');
    await fixture.env.pool.query(
      `UPDATE webhook_rx SET time_disabled = now(), disabled_reason = 'maintenance window' WHERE id = $1`,
      [rx.id],
    );
    const byDelivery = await fixture.system.request('POST', `/v1/deliveries/${failed.id}/resend`);
    expect(byDelivery.status).toBe(409);
    expect(byDelivery.body.error.message).toMatch(
      /^receiver "paused" is disabled since .* \(maintenance window\); enable it before resending$/,
    );
    const byEvent = await fixture.system.request('POST', `/v1/events/${eventId}/resend`, { receiver: 'paused' });
    expect(byEvent.status).toBe(409);
    const bulk = await fixture.system.request('POST', '/v1/resends', { receiver: 'paused' });
    expect(bulk.status).toBe(409);
    expect(await deliveriesOf(fixture, rx.id)).toHaveLength(1);
  });

  test('unknown ids get 404', async () => {
    const unknown = randomUUID();
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', `/v1/deliveries/${unknown}/resend`, undefined, /^delivery ".*" was not found$/],
      ['GET', `/v1/deliveries/${unknown}`, undefined, /^delivery ".*" was not found$/],
      ['POST', `/v1/events/${unknown}/resend`, { receiver: 'one' }, /^event ".*" was not found$/],
      ['GET', `/v1/resends/${unknown}`, undefined, /^resend batch ".*" was not found$/],
      ['POST', '/v1/resends', { receiver: 'nobody' }, /^receiver "nobody" was not found$/],
      ['POST', '/v1/receivers/nobody/probe', undefined, /^receiver "nobody" was not found$/],
    ];
    for (const [method, path, body, message] of cases) {
      const response = await fixture.system.request(method, path, body);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body.error.message, `${method} ${path}`).toMatch(message);
    }
  });

  test('invalid input gets 400', async () => {
    const eventId = await publishEvent(fixture.system, 'invalid.created');
    const cases: [string, string, unknown, string][] = [
      ['POST', '/v1/deliveries/not-a-uuid/resend', undefined, 'id: must be a UUID'],
      ['POST', `/v1/events/${eventId}/resend`, {}, 'receiver: is missing'],
      ['POST', `/v1/events/${eventId}/resend`, { receiver: 5 }, 'receiver: must be a string'],
      ['POST', '/v1/resends', { state: 'delivered' }, 'state: must be "failed", got "delivered"'],
      ['POST', '/v1/resends', { since: 'yesterday' }, 'since: must be a timestamp with a time zone'],
      ['POST', '/v1/resends', { until: '2026-12-01T00:00:00' }, 'until: must be a timestamp with a time zone'],
      [
        'POST',
        '/v1/resends',
        { since: '2026-12-02T00:00:00Z', until: '2026-12-01T00:00:00Z' },
        'since: must be before until',
      ],
      ['POST', '/v1/resends', { since: '2999-01-01T00:00:00Z' }, 'since: must not be in the future'],
      ['POST', '/v1/resends', { receiver: 'one', extra: true }, 'body: has unknown field(s) "extra"'],
      ['POST', '/v1/receivers/one/probe', { resend: 'yes' }, 'resend: must be a boolean'],
    ];
    for (const [method, path, body, message] of cases) {
      const response = await fixture.system.request(method, path, body);
      expect(response.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      expect(response.body.error.message, `${method} ${path} ${JSON.stringify(body)}`).toContain(message);
    }
  });
});

describe('bulk resend', () => {
  // Pages of 4 rows, so that every bulk resend below takes several pages.
  const fixture = useSystem({ overrides: { RESEND_PAGE_SIZE: '4' } });
  const harnesses: ReceiverHarness[] = [];
  afterAll(async () => {
    for (const harness of harnesses) await harness.stop();
  });

  async function failingReceiver(name: string, events: number) {
    const harness = await startHarness();
    harnesses.push(harness);
    const rx = await createReceiver(fixture.system, {
      name,
      endpoint: harness.url(),
      subscriptions: [`${name}.*`],
    });
    const eventIds: string[] = [];
    for (let index = 0; index < events; index++) {
      eventIds.push(await publishEvent(fixture.system, `${name}.created`, { index }));
    }
    const rows = await waitForFinished(fixture, rx.id, events);
    expect(rows.every((row) => row.state === 'failed')).toBe(true);
    return { harness, rx, eventIds };
  }

  test('resends N failed deliveries', async () => {
    const events = 10;
    const { harness, rx, eventIds } = await failingReceiver('recovering', events);
    harness.respondWith(OK);
    const requestsBefore = harness.requests.length;

    const created = await fixture.system.request('POST', '/v1/resends', {
      receiver: 'recovering',
      state: 'failed',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body.rx_id).toBe(rx.id);
    expect(created.body.since).toBeNull();
    const done = await waitForResend(fixture.system, created.body.id);
    expect(done.state).toBe('completed');
    expect(done.error).toBeNull();
    expect(done.num_matched).toBe(events);
    expect(done.num_created).toBe(events);
    expect(done.num_skipped).toBe(0);

    const rows = await waitForFinished(fixture, rx.id, events * 2);
    const resent = rows.filter((row) => row.triggered_by === 'resend');
    expect(resent).toHaveLength(events);
    expect(resent.every((row) => row.state === 'delivered' && row.attempts === 1)).toBe(true);
    expect(resent.every((row) => row.resend_batch_id === created.body.id)).toBe(true);
    expect(resent.map((row) => row.event_id).sort()).toEqual([...eventIds].sort());

    const progress = await fixture.system.request('GET', `/v1/resends/${created.body.id}`);
    expect(progress.body.deliveries).toEqual({ pending: 0, delivered: events, failed: 0 });
    const newRequests = harness.requests.slice(requestsBefore);
    expect(newRequests).toHaveLength(events);
    expect(new Set(newRequests.map((request) => request.headers['webhook-id'])).size).toBe(events);
    await expectConsistentAttempts(fixture.env.pool);
  });

  test('skips events that arrived', async () => {
    // After the previous test every failed delivery of "recovering" has a
    // delivered resend, so a second bulk resend matches them and creates none.
    const created = await fixture.system.request('POST', '/v1/resends', { receiver: 'recovering' });
    expect(created.status).toBe(202);
    const done = await waitForResend(fixture.system, created.body.id);
    expect(done.state).toBe('completed');
    expect(done.num_matched).toBe(10);
    expect(done.num_created).toBe(0);
    expect(done.num_skipped).toBe(10);
  });

  test('skips pending and repeated events', async () => {
    const { rx, eventIds } = await failingReceiver('repeated', 3);
    // A second failed delivery of the first event, and a pending one of the
    // second: the first is resent once, the second not at all.
    await fixture.env.pool.query(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
       VALUES (gen_random_uuid(), $1, $3, 'resend', 'failed', 3, now(), now()),
              (gen_random_uuid(), $2, $3, 'resend', 'pending', 0, now() - interval '1 hour', NULL)`,
      [eventIds[0], eventIds[1], rx.id],
    );
    // The pending row has no job. A lease that runs for an hour keeps the
    // sweeper from enqueueing it, so that it stays pending while the resend
    // reads it.
    await fixture.env.pool.query(
      `UPDATE webhook_delivery SET time_leased = now() + interval '1 hour', deliverator_id = 'test-holder'
       WHERE rx_id = $1 AND state = 'pending'`,
      [rx.id],
    );
    const created = await fixture.system.request('POST', '/v1/resends', { receiver: rx.id });
    const done = await waitForResend(fixture.system, created.body.id);
    expect(done.num_matched).toBe(4);
    expect(done.num_created).toBe(2);
    const resentEvents = (await deliveriesOf(fixture, rx.id))
      .filter((row) => row.resend_batch_id === created.body.id)
      .map((row) => row.event_id)
      .sort();
    expect(resentEvents).toEqual([eventIds[0], eventIds[2]].sort());
  });

  test('time range limits matches', async () => {
    const { rx, eventIds } = await failingReceiver('ranged', 6);
    // Spread the six failed deliveries over six hours, one per hour.
    await fixture.env.pool.query(
      `UPDATE webhook_delivery d SET time_created = now() - make_interval(hours => t.position::int)
       FROM unnest($1::uuid[]) WITH ORDINALITY AS t(event_id, position)
       WHERE d.event_id = t.event_id AND d.rx_id = $2`,
      [eventIds, rx.id],
    );
    const hour = 3_600_000;
    // Since 4.5 h ago until 1.5 h ago: the deliveries 2, 3 and 4 hours old.
    const created = await fixture.system.request('POST', '/v1/resends', {
      receiver: 'ranged',
      since: new Date(Date.now() - 4.5 * hour).toISOString(),
      until: new Date(Date.now() - 1.5 * hour).toISOString(),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const done = await waitForResend(fixture.system, created.body.id);
    expect(done.num_matched).toBe(3);
    expect(done.num_created).toBe(3);
    const resentEvents = (await deliveriesOf(fixture, rx.id))
      .filter((row) => row.resend_batch_id === created.body.id)
      .map((row) => row.event_id)
      .sort();
    expect(resentEvents).toEqual([eventIds[1], eventIds[2], eventIds[3]].sort());
  });

  test('all receivers skips unusable ones', async () => {
    const live = await failingReceiver('everyone-live', 2);
    const disabled = await failingReceiver('everyone-disabled', 2);
    const deleted = await failingReceiver('everyone-deleted', 2);
    live.harness.respondWith(OK);
    await fixture.env.pool.query(
      `UPDATE webhook_rx SET time_disabled = now(), disabled_reason = 'test' WHERE id = $1`,
      [disabled.rx.id],
    );
    expect((await fixture.system.request('DELETE', `/v1/receivers/${deleted.rx.id}`)).status).toBe(204);
    const since = await fixture.env.pool.query<{ since: Date }>(
      `SELECT min(time_created) AS since FROM webhook_delivery WHERE rx_id = ANY($1::uuid[])`,
      [[live.rx.id, disabled.rx.id, deleted.rx.id]],
    );

    const created = await fixture.system.request('POST', '/v1/resends', {
      since: since.rows[0]!.since.toISOString(),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body.rx_id).toBeNull();
    const done = await waitForResend(fixture.system, created.body.id);
    expect(done.state).toBe('completed');
    expect(done.num_matched).toBe(6);
    expect(done.num_created).toBe(2);
    const byReceiver = await fixture.env.pool.query<{ rx_id: string }>(
      `SELECT rx_id::text FROM webhook_delivery WHERE resend_batch_id = $1`,
      [created.body.id],
    );
    expect(byReceiver.rows.map((row) => row.rx_id)).toEqual([live.rx.id, live.rx.id]);
    await waitForFinished(fixture, live.rx.id, 4);
  });
});

describe('bulk resend after a crash', () => {
  // No dispatch worker at first, so that the test runs pages by hand.
  const fixture = useSystem({ dispatch: false, overrides: { RESEND_PAGE_SIZE: '3' } });
  let harness: ReceiverHarness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(async () => {
    await harness?.stop();
  });

  test('resumes from the last page', async () => {
    const config = fixture.system.config;
    const rx = await createReceiver(fixture.system, {
      name: 'crashy',
      endpoint: harness.url(),
      subscriptions: ['crashy.*'],
    });
    // Without a dispatch worker the events are inserted as failed deliveries directly.
    const { rows: events } = await fixture.env.pool.query<{ id: string }>(
      `WITH ev AS (
         INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
         SELECT gen_random_uuid(), 'crashy.created', '{}', now() - interval '1 hour', now(), now(), 1
         FROM generate_series(1, 8)
         RETURNING id, time_created)
       INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
       SELECT gen_random_uuid(), ev.id, $1, 'event', 'failed', 3, ev.time_created, now() FROM ev
       RETURNING event_id::text AS id`,
      [rx.id],
    );
    expect(events).toHaveLength(8);
    harness.respondWith(OK);

    const created = await fixture.system.request('POST', '/v1/resends', { receiver: 'crashy' });
    expect(created.status).toBe(202);
    const batchId = created.body.id as string;

    const connection = workerConnection(config);
    const queues = openQueues(connection, config);
    try {
      // The API added the job of page 0. Page 0 runs twice, as after a crash
      // between the commit and the job's completion: the second run changes
      // nothing and only makes sure that the job of page 1 exists.
      expect(await queues.dispatch.getJob(resendPageJobId(batchId, 0))).toBeDefined();
      const deps = {
        pool: fixture.env.pool,
        dispatchQueue: queues.dispatch,
        deliveryQueues: queues.delivery,
        logger: createLogger('test', 'silent'),
        pageSize: config.resendPageSize,
      };
      expect(await runResendPage(deps, batchId, 0)).toEqual({ kind: 'advanced', matched: 3, created: 3 });
      expect(await runResendPage(deps, batchId, 0)).toEqual({ kind: 'stale' });
      const afterFirst = await fixture.system.request('GET', `/v1/resends/${batchId}`);
      expect(afterFirst.body.state).toBe('running');
      expect(afterFirst.body.num_matched).toBe(3);
      expect(afterFirst.body.num_created).toBe(3);

      // The jobs are lost, as when Redis is flushed: the resend sweeper of
      // the dispatch worker started below adds the job of page 1 again.
      for (const step of [0, 1]) await queues.dispatch.remove(resendPageJobId(batchId, step));
      expect(await queues.dispatch.getJob(resendPageJobId(batchId, 1))).toBeUndefined();
    } finally {
      await queues.dispatch.close();
      await queues.delivery.close();
      connection.disconnect();
    }

    const dispatch = startDispatchWorker(config, createLogger('test', 'silent'));
    try {
      const done = await waitForResend(fixture.system, batchId);
      expect(done.state).toBe('completed');
      expect(done.num_matched).toBe(8);
      expect(done.num_created).toBe(8);
      const rows = await waitForFinished(fixture, rx.id, 16);
      const resent = rows.filter((row) => row.resend_batch_id === batchId);
      expect(resent).toHaveLength(8);
      expect(new Set(resent.map((row) => row.event_id)).size).toBe(8);
      expect(resent.every((row) => row.state === 'delivered')).toBe(true);
    } finally {
      await dispatch.close();
    }
  });
});

describe('probe', () => {
  const fixture = useSystem();
  let harness: ReceiverHarness;
  let watcher: ReceiverHarness;
  beforeAll(async () => {
    harness = await startHarness(OK);
    watcher = await startHarness(OK);
  });
  afterAll(async () => {
    await harness?.stop();
    await watcher?.stop();
  });

  test('reports a success', async () => {
    const rx = await createReceiver(fixture.system, {
      name: 'probed',
      endpoint: harness.url(),
      subscriptions: ['probed.*'],
    });
    // A receiver of every class must not get the probe event.
    await createReceiver(fixture.system, {
      name: 'watcher',
      endpoint: watcher.url(),
      subscriptions: ['**'],
    });
    const response = await fixture.system.request('POST', '/v1/receivers/probed/probe');
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.resend_batch).toBeNull();
    const probe = response.body.probe;
    expect(probe.rx_id).toBe(rx.id);
    expect(probe.triggered_by).toBe('probe');
    expect(probe.state).toBe('delivered');
    expect(probe.attempt_log).toHaveLength(1);
    expect(probe.attempt_log[0].result).toBe('succeeded');
    expect(probe.attempt_log[0].response_status).toBe(200);

    expect(harness.requests).toHaveLength(1);
    const request = harness.requests[0]!;
    expect(request.headers['x-webhook-event-class']).toBe('webhook.probe');
    expect(request.headers['webhook-id']).toBe(probe.id);
    const body = JSON.parse(request.body.toString());
    expect(body.event_class).toBe('webhook.probe');
    expect(body.data).toEqual({});

    const event = await fixture.system.request('GET', `/v1/events/${probe.event_id}`);
    expect(event.body.num_dispatched).toBe(0);
    // Two sweeps later the watcher still got nothing.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(watcher.requests).toHaveLength(0);
    const { rows } = await fixture.env.pool.query(
      `SELECT 1 FROM webhook_delivery WHERE event_id = $1 AND rx_id <> $2`,
      [probe.event_id, rx.id],
    );
    expect(rows).toHaveLength(0);
  });

  test('reports a failure after one attempt', async () => {
    harness.respondWith(FAILING);
    const before = harness.requests.length;
    const response = await fixture.system.request('POST', '/v1/receivers/probed/probe', { resend: false });
    expect(response.status).toBe(200);
    expect(response.body.probe.state).toBe('failed');
    expect(response.body.probe.attempt_log.map((attempt: { response_status: number }) => attempt.response_status)).toEqual([500]);
    // The schedule would retry after 200 ms; a probe gets no retry.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(harness.requests.length - before).toBe(1);
  });

  test('resend=true after a success resends failures', async () => {
    harness.respondWith(FAILING);
    const rx = (await fixture.system.request('GET', '/v1/receivers/probed')).body;
    for (let index = 0; index < 3; index++) await publishEvent(fixture.system, 'probed.created', { index });
    await waitFor(
      async () => (await deliveriesOf(fixture, rx.id)).filter((row) => row.triggered_by === 'event' && row.state === 'failed').length === 3,
      { timeoutMs: 20_000, message: 'three failed deliveries' },
    );

    // A failed probe starts nothing.
    const failedProbe = await fixture.system.request('POST', '/v1/receivers/probed/probe', { resend: true });
    expect(failedProbe.body.probe.state).toBe('failed');
    expect(failedProbe.body.resend_batch).toBeNull();

    harness.respondWith(OK);
    const response = await fixture.system.request('POST', `/v1/receivers/${rx.id}/probe`, { resend: true });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.probe.state).toBe('delivered');
    const batch = response.body.resend_batch;
    expect(batch.rx_id).toBe(rx.id);
    const done = await waitForResend(fixture.system, batch.id);
    // The failed probes are not resent.
    expect(done.num_matched).toBe(3);
    expect(done.num_created).toBe(3);
    await waitFor(
      async () => (await fixture.system.request('GET', `/v1/resends/${batch.id}`)).body.deliveries.delivered === 3,
      { message: 'three delivered resends' },
    );
  });

  test('disabled receiver is probed', async () => {
    harness.respondWith(OK);
    await fixture.env.pool.query(
      `UPDATE webhook_rx SET time_disabled = now(), disabled_reason = 'test' WHERE name = 'probed'`,
    );
    try {
      const response = await fixture.system.request('POST', '/v1/receivers/probed/probe');
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      expect(response.body.probe.state).toBe('delivered');
      const withResend = await fixture.system.request('POST', '/v1/receivers/probed/probe', { resend: true });
      expect(withResend.status).toBe(409);
      expect(withResend.body.error.message).toMatch(/is disabled .*; enable it before resending$/);
    } finally {
      await fixture.env.pool.query(
        `UPDATE webhook_rx SET time_disabled = NULL, disabled_reason = NULL WHERE name = 'probed'`,
      );
    }
  });

  test('deleted receiver gets 409', async () => {
    const rx = await createReceiver(fixture.system, {
      name: 'probe-gone',
      endpoint: harness.url(),
      subscriptions: ['gone.*'],
    });
    await fixture.system.request('DELETE', `/v1/receivers/${rx.id}`);
    const response = await fixture.system.request('POST', `/v1/receivers/${rx.id}/probe`);
    expect(response.status).toBe(409);
    expect(response.body.error.message).toMatch(/was deleted at .*; a deleted receiver cannot be probed$/);
  });
});

describe('probe without a delivery worker', () => {
  const fixture = useSystem({ delivery: false, overrides: { PROBE_TIMEOUT_MS: '300' } });

  test('times out with 504', async () => {
    const rx = await createReceiver(fixture.system, {
      name: 'unanswered',
      endpoint: 'http://127.0.0.1:9/hook',
      subscriptions: ['unanswered.*'],
    });
    const response = await fixture.system.request('POST', '/v1/receivers/unanswered/probe');
    expect(response.status).toBe(504);
    expect(response.body.error.code).toBe('probe_timeout');
    expect(response.body.error.message).toMatch(
      /^probe delivery "(.*)" got no attempt result within 300 ms \(PROBE_TIMEOUT_MS\); check that a delivery worker is running/,
    );
    const deliveryId = /^probe delivery "(.*?)"/.exec(response.body.error.message)![1]!;
    const fetched = await fixture.system.request('GET', `/v1/deliveries/${deliveryId}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.rx_id).toBe(rx.id);
    expect(fetched.body.state).toBe('pending');
  });
});

import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, test } from 'vitest';
import { generateSecret } from '../../shared/signing.js';
import { DeliveryStore } from '../../workers/delivery/delivery-store.js';
import type { AttemptOutcome } from '../../workers/delivery/send-request.js';
import { runCliInProcess } from '../helpers/cli-runner.js';
import {
  expectConsistentAttempts,
  readAttempts,
  readDelivery,
  waitForAttempts,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { captureLogs } from '../helpers/log-capture.js';
import { ReceiverHarness, type Responder } from '../helpers/receiver-harness.js';
import { ScriptedReceiver, type ScriptedHandler } from '../helpers/scripted-receiver.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';

// The test config's RETRY_SCHEDULE_MS=200,400 allows 3 attempts, and
// RECEIVER_DISABLE_AFTER_MS keeps its default of 5 days, so the tests move
// time_failing_since back instead of waiting.

const logs = captureLogs('info');
const fixture = useSystem({ logger: logs.logger });
const harnesses: (ReceiverHarness | ScriptedReceiver)[] = [];

afterAll(async () => {
  await Promise.all(harnesses.map((harness) => harness.stop()));
});

async function startScripted(handler: ScriptedHandler) {
  const receiver = await new ScriptedReceiver(handler).start();
  harnesses.push(receiver);
  return receiver;
}

/** A promise and the function that resolves it, for holding a response until the test is ready. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function startHarness(responder: Responder) {
  const harness = await new ReceiverHarness(responder).start();
  harnesses.push(harness);
  return harness;
}

interface RxState {
  time_disabled: Date | null;
  disabled_reason: string | null;
  time_failing_since: Date | null;
  /** Transaction id of the row version: it changes whenever the row is rewritten. */
  xmin: string;
}

async function readRx(rxId: string): Promise<RxState> {
  const { rows } = await fixture.env.pool.query<RxState>(
    `SELECT time_disabled, disabled_reason, time_failing_since, xmin::text
     FROM webhook_rx WHERE id = $1`,
    [rxId],
  );
  return rows[0]!;
}

async function setFailingSince(rxId: string, daysAgo: number): Promise<Date> {
  const { rows } = await fixture.env.pool.query<{ time_failing_since: Date }>(
    `UPDATE webhook_rx SET time_failing_since = now() - make_interval(days => $2)
     WHERE id = $1 RETURNING time_failing_since`,
    [rxId, daysAgo],
  );
  return rows[0]!.time_failing_since;
}

/** Waits until the event is dispatched and returns the receivers it got deliveries for. */
async function dispatchedReceivers(eventId: string): Promise<string[]> {
  await waitFor(
    async () => {
      const { rows } = await fixture.env.pool.query(
        'SELECT 1 FROM webhook_event WHERE id = $1 AND time_dispatched IS NOT NULL',
        [eventId],
      );
      return rows.length === 1;
    },
    { message: `event ${eventId} to be dispatched` },
  );
  const { rows } = await fixture.env.pool.query<{ rx_id: string }>(
    'SELECT rx_id::text FROM webhook_delivery WHERE event_id = $1',
    [eventId],
  );
  return rows.map((row) => row.rx_id);
}

function disabledLogLines(rxId: string) {
  return logs.records.filter((record) => record.msg === 'receiver disabled' && record.rxId === rxId);
}

describe('automatic disabling', () => {
  test('410 Gone disables at once', async () => {
    const { env, system } = fixture;
    const harness = await startHarness(() => ({ status: 410, body: 'gone' }));
    const rx = await createReceiver(system, {
      name: 'answers-410',
      endpoint: harness.url(),
      subscriptions: ['gone.*'],
    });
    const eventId = await publishEvent(system, 'gone.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expect(delivery.attempts).toBe(1);
    expect(delivery.failure_reason).toBe('receiver disabled (endpoint answered 410 Gone)');
    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'failed_http_error', 410],
    ]);
    expect(harness.requests).toHaveLength(1);

    const state = await readRx(rx.id);
    expect(state.time_disabled).toBeInstanceOf(Date);
    expect(state.disabled_reason).toBe('endpoint answered 410 Gone');
    const viewed = await system.request('GET', `/v1/receivers/${rx.id}`);
    expect(viewed.body.time_disabled).toBe(state.time_disabled!.toISOString());
    expect(viewed.body.disabled_reason).toBe('endpoint answered 410 Gone');

    const lines = disabledLogLines(rx.id);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe(40);
    expect(lines[0]!.reason).toBe('endpoint answered 410 Gone');

    const later = await publishEvent(system, 'gone.ping');
    expect(await dispatchedReceivers(later)).toEqual([]);
    expect(harness.requests).toHaveLength(1);
    await expectConsistentAttempts(env.pool);
  });

  test('failing longer than the period disables', async () => {
    const { env, system } = fixture;
    const harness = await startHarness(() => ({ status: 503 }));
    const rx = await createReceiver(system, {
      name: 'failing-six-days',
      endpoint: harness.url(),
      subscriptions: ['stale.*'],
    });
    const failingSince = await setFailingSince(rx.id, 6);
    const eventId = await publishEvent(system, 'stale.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    const expectedReason =
      `every attempt failed since ${failingSince.toISOString().slice(0, 19)}Z, ` +
      'for longer than RECEIVER_DISABLE_AFTER_MS (432000000 ms)';
    const state = await readRx(rx.id);
    expect(state.disabled_reason).toBe(expectedReason);
    expect(state.time_failing_since!.getTime()).toBe(failingSince.getTime());
    expect(delivery.attempts).toBe(1);
    expect(delivery.failure_reason).toBe(`receiver disabled (${expectedReason})`);
    expect(harness.requests).toHaveLength(1);
    expect(disabledLogLines(rx.id).map((line) => line.reason)).toEqual([expectedReason]);
  });

  test('failing shorter than the period keeps it', async () => {
    const { env, system } = fixture;
    const harness = await startHarness(() => ({ status: 503 }));
    const rx = await createReceiver(system, {
      name: 'failing-four-days',
      endpoint: harness.url(),
      subscriptions: ['recent.*'],
    });
    const failingSince = await setFailingSince(rx.id, 4);
    const eventId = await publishEvent(system, 'recent.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expect(delivery.attempts).toBe(3);
    expect(delivery.failure_reason).toBeNull();
    const state = await readRx(rx.id);
    expect(state.time_disabled).toBeNull();
    expect(state.disabled_reason).toBeNull();
    expect(state.time_failing_since!.getTime()).toBe(failingSince.getTime());
    expect(disabledLogLines(rx.id)).toHaveLength(0);
  });

  test('failure tracking writes the row only on changes', async () => {
    const { env, system } = fixture;
    // Two failures, then successes. The first success waits for the gate,
    // so that the checks after the second failure see no success yet.
    const success = gate();
    const harness = await startScripted((_request, response, index) => {
      if (index < 2) {
        response.writeHead(500).end();
        return;
      }
      void success.opened.then(() => response.writeHead(200).end());
    });
    const rx = await createReceiver(system, {
      name: 'recovers',
      endpoint: harness.url(),
      subscriptions: ['recover.*'],
    });
    const created = await readRx(rx.id);
    expect(created.time_failing_since).toBeNull();

    const eventId = await publishEvent(system, 'recover.ping');
    await waitForAttempts(env.pool, eventId, rx.id, 1);
    const afterFirst = await readRx(rx.id);
    expect(afterFirst.time_failing_since).toBeInstanceOf(Date);
    expect(afterFirst.xmin).not.toBe(created.xmin);

    await waitForAttempts(env.pool, eventId, rx.id, 2);
    const afterSecond = await readRx(rx.id);
    expect(afterSecond.time_failing_since!.getTime()).toBe(afterFirst.time_failing_since!.getTime());
    expect(afterSecond.xmin, 'a second failure rewrote the receiver row').toBe(afterFirst.xmin);

    success.open();
    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    const recovered = await readRx(rx.id);
    expect(recovered.time_failing_since).toBeNull();
    expect(recovered.xmin).not.toBe(afterSecond.xmin);

    const next = await publishEvent(system, 'recover.ping');
    expect((await waitForFinished(env.pool, next, rx.id)).state).toBe('delivered');
    expect((await readRx(rx.id)).xmin, 'a success rewrote the receiver row').toBe(recovered.xmin);
  });
});

describe('operator disabling', () => {
  test('disable ends pending deliveries, enable resumes', async () => {
    const { env, system } = fixture;
    // The second attempt waits for the gate, so that the receiver is
    // disabled while a retry is still due.
    const secondAttempt = gate();
    let status = 500;
    const harness = await startScripted((_request, response, index) => {
      if (index === 1) {
        void secondAttempt.opened.then(() => response.writeHead(500).end());
        return;
      }
      response.writeHead(status).end();
    });
    const rx = await createReceiver(system, {
      name: 'maintenance',
      endpoint: harness.url(),
      subscriptions: ['maint.*'],
    });
    const eventId = await publishEvent(system, 'maint.ping');
    await waitFor(() => harness.requests.length === 2, { message: 'the second attempt to arrive' });

    const disabled = await system.request('POST', `/v1/receivers/${rx.id}/disable`, {
      reason: 'endpoint moves',
    });
    expect(disabled.status).toBe(200);
    expect(disabled.body.disabled_reason).toBe('disabled by an operator: endpoint moves');
    expect(typeof disabled.body.time_disabled).toBe('string');
    secondAttempt.open();

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expect(delivery.failure_reason).toBe('receiver disabled (disabled by an operator: endpoint moves)');
    expect(delivery.attempts).toBe(2);
    const requestsWhenEnded = harness.requests.length;
    expect(requestsWhenEnded).toBe(2);

    const skipped = await publishEvent(system, 'maint.ping');
    expect(await dispatchedReceivers(skipped)).toEqual([]);

    const again = await system.request('POST', `/v1/receivers/maintenance/disable`, {
      reason: 'another reason',
    });
    expect(again.status).toBe(200);
    expect(again.body.disabled_reason).toBe('disabled by an operator: endpoint moves');
    expect(again.body.time_disabled).toBe(disabled.body.time_disabled);

    const apiLines = logs.records.filter(
      (record) => record.msg === 'receiver disabled' && record.rxId === rx.id,
    );
    expect(apiLines).toHaveLength(1);
    expect(apiLines[0]!.level).toBe(40);
    expect(apiLines[0]!.reason).toBe('disabled by an operator: endpoint moves');

    const enabled = await system.request('POST', `/v1/receivers/${rx.id}/enable`);
    expect(enabled.status).toBe(200);
    expect(enabled.body.time_disabled).toBeNull();
    expect(enabled.body.disabled_reason).toBeNull();
    expect((await readRx(rx.id)).time_failing_since).toBeNull();

    status = 200;
    const resumed = await publishEvent(system, 'maint.ping');
    expect((await waitForFinished(env.pool, resumed, rx.id)).state).toBe('delivered');
    expect(harness.requests).toHaveLength(requestsWhenEnded + 1);
    await expectConsistentAttempts(env.pool);
  });

  test('disable and enable reject bad input', async () => {
    const { system } = fixture;
    const harness = await startHarness(() => ({ status: 200 }));
    const rx = await createReceiver(system, {
      name: 'bad-input',
      endpoint: harness.url(),
      subscriptions: ['bad.*'],
    });
    const cases: [unknown, string][] = [
      [{ reason: '' }, 'reason: must be a non-empty string of at most 500 characters, got ""'],
      [{ reason: 'x'.repeat(501) }, 'reason: must be a non-empty string of at most 500 characters, got 501 characters'],
      [{ reason: 7 }, 'reason: must be a string, got number'],
      [{ why: 'x' }, 'body: has unknown field(s) "why"; allowed fields are "reason"'],
    ];
    for (const [body, message] of cases) {
      const response = await system.request('POST', `/v1/receivers/${rx.id}/disable`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.message).toBe(message);
    }
    expect((await readRx(rx.id)).time_disabled).toBeNull();

    const missing = randomUUID();
    for (const action of ['disable', 'enable']) {
      const response = await system.request('POST', `/v1/receivers/${missing}/${action}`);
      expect(response.status).toBe(404);
      expect(response.body.error.code).toBe('not_found');
    }

    const withoutReason = await system.request('POST', `/v1/receivers/${rx.id}/disable`);
    expect(withoutReason.status).toBe(200);
    expect(withoutReason.body.disabled_reason).toBe('disabled by an operator');
    const enableNotDisabled = await system.request('POST', `/v1/receivers/${rx.id}/enable`);
    expect(enableNotDisabled.status).toBe(200);
    const enableAgain = await system.request('POST', `/v1/receivers/${rx.id}/enable`);
    expect(enableAgain.status).toBe(200);
    expect(enableAgain.body.time_disabled).toBeNull();
  });

  test('CLI disables and enables', async () => {
    const { env, system } = fixture;
    const harness = await startHarness(() => ({ status: 200 }));
    const rx = await createReceiver(system, {
      name: 'cli-target',
      endpoint: harness.url(),
      subscriptions: ['cli.*'],
    });
    const cli = (args: string[]) =>
      runCliInProcess(args, { env: { WEBHOOKS_API_URL: system.api.url } });

    const disabled = await cli(['receivers', 'disable', 'cli-target', '--reason', 'rotating keys']);
    expect(disabled.stderr).toBe('');
    expect(disabled.status).toBe(0);
    expect(JSON.parse(disabled.stdout)).toMatchObject({
      id: rx.id,
      disabled_reason: 'disabled by an operator: rotating keys',
    });
    expect((await readRx(rx.id)).disabled_reason).toBe('disabled by an operator: rotating keys');

    const enabled = await cli(['receivers', 'enable', rx.id]);
    expect(enabled.status).toBe(0);
    expect(JSON.parse(enabled.stdout)).toMatchObject({ id: rx.id, time_disabled: null, disabled_reason: null });

    const missing = await cli(['receivers', 'disable', 'no-such-receiver']);
    expect(missing.status).toBe(1);
    expect(JSON.parse(missing.stderr).error.message).toBe('receiver "no-such-receiver" was not found');

    const help = await cli(['receivers', '--help']);
    expect(help.stdout).toContain('disable');
    expect(help.stdout).toContain('enable');
  });
});

describe('delivery store tracking', () => {
  const FAILED_500: AttemptOutcome = {
    result: 'failed_http_error',
    responseStatus: 500,
    responseDurationMs: 5,
    responseBody: 'down',
    unreachableReason: null,
  };
  const SUCCEEDED: AttemptOutcome = {
    result: 'succeeded',
    responseStatus: 200,
    responseDurationMs: 5,
    responseBody: 'ok',
    unreachableReason: null,
  };
  const GONE: AttemptOutcome = { ...FAILED_500, responseStatus: 410, responseBody: 'gone' };

  /** Inserts a receiver failing for ten days and `count` pending deliveries to it. */
  async function insertFailingReceiver(name: string, count: number) {
    const pool = fixture.env.pool;
    const rxId = randomUUID();
    await pool.query(
      `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified, time_failing_since)
       VALUES ($1, $2, 'http://127.0.0.1:9/hook', now(), now(), now() - interval '10 days')`,
      [rxId, name],
    );
    await pool.query(
      `INSERT INTO webhook_secret (id, rx_id, secret, time_created, time_modified)
       VALUES (gen_random_uuid(), $1, $2, now(), now())`,
      [rxId, generateSecret()],
    );
    const deliveryIds: string[] = [];
    for (let index = 0; index < count; index++) {
      const eventId = randomUUID();
      const deliveryId = randomUUID();
      await pool.query(
        `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
         VALUES ($1, 'store.ping', '{}', now(), now(), now(), 1)`,
        [eventId],
      );
      await pool.query(
        `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
         VALUES ($1, $2, $3, 'event', 'pending', 0, now())`,
        [deliveryId, eventId, rxId],
      );
      deliveryIds.push(deliveryId);
    }
    return { rxId, deliveryIds };
  }

  async function claimAll(store: DeliveryStore, ids: string[]) {
    return Promise.all(
      ids.map(async (id) => {
        const claim = await store.claim(id);
        if (claim.kind !== 'claimed') throw new Error(`delivery ${id} was not claimed: ${claim.kind}`);
        return claim.delivery;
      }),
    );
  }

  test('period 0 keeps failing receivers', async () => {
    const disabledCalls: [string, string][] = [];
    const store = new DeliveryStore(fixture.env.pool, 'store-zero', 60_000, undefined, {
      disableAfterMs: 0,
      onDisabled: (rxId, reason) => disabledCalls.push([rxId, reason]),
    });
    const { rxId, deliveryIds } = await insertFailingReceiver('store-zero', 2);
    const [first, second] = await claimAll(store, deliveryIds);

    expect(await store.recordAttempt(first!, FAILED_500, null)).toBe(true);
    expect((await readRx(rxId)).time_disabled).toBeNull();
    expect(disabledCalls).toEqual([]);

    expect(await store.recordAttempt(second!, GONE, null)).toBe(true);
    expect((await readRx(rxId)).disabled_reason).toBe('endpoint answered 410 Gone');
    expect(disabledCalls).toEqual([[rxId, 'endpoint answered 410 Gone']]);

    const [again] = await claimAll(store, [deliveryIds[0]!]);
    expect(again!.rxDisabledReason).toBe('endpoint answered 410 Gone');
  });

  test('success in a batch clears tracking', async () => {
    const disabledCalls: string[] = [];
    const store = new DeliveryStore(fixture.env.pool, 'store-batch', 60_000, undefined, {
      disableAfterMs: 5 * 86_400_000,
      onDisabled: (rxId) => disabledCalls.push(rxId),
    });
    const { rxId, deliveryIds } = await insertFailingReceiver('store-batch', 2);
    const [first, second] = await claimAll(store, deliveryIds);

    // Both writes go into one statement, because the store batches
    // concurrent calls, and the success wins over the failure.
    const written = await Promise.all([
      store.recordAttempt(first!, FAILED_500, null),
      store.recordAttempt(second!, SUCCEEDED, 'delivered'),
    ]);
    expect(written).toEqual([true, true]);
    const state = await readRx(rxId);
    expect(state.time_failing_since).toBeNull();
    expect(state.time_disabled).toBeNull();
    expect(disabledCalls).toEqual([]);
  });

  test('one callback per disabled receiver', async () => {
    const disabledCalls: string[] = [];
    const store = new DeliveryStore(fixture.env.pool, 'store-once', 60_000, undefined, {
      disableAfterMs: 86_400_000,
      onDisabled: (rxId) => disabledCalls.push(rxId),
    });
    const { rxId, deliveryIds } = await insertFailingReceiver('store-once', 3);
    const claimed = await claimAll(store, deliveryIds);
    const written = await Promise.all(
      claimed.map((delivery) => store.recordAttempt(delivery, FAILED_500, null)),
    );
    expect(written).toEqual([true, true, true]);
    expect(disabledCalls).toEqual([rxId]);
    expect((await readRx(rxId)).disabled_reason).toMatch(
      /^every attempt failed since \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z, for longer than RECEIVER_DISABLE_AFTER_MS \(86400000 ms\)$/,
    );
    for (const id of deliveryIds) {
      const { rows } = await fixture.env.pool.query('SELECT state::text, attempts FROM webhook_delivery WHERE id = $1', [id]);
      expect(rows[0]).toEqual({ state: 'pending', attempts: 1 });
    }
  });
});

test('deleted receiver keeps its deleted reason', async () => {
  const { env, system } = fixture;
  const harness = await startHarness(() => ({ status: 500 }));
  const rx = await createReceiver(system, {
    name: 'deleted-and-disabled',
    endpoint: harness.url(),
    subscriptions: ['both.*'],
  });
  const eventId = await publishEvent(system, 'both.ping');
  await waitForAttempts(env.pool, eventId, rx.id, 1);
  // One statement, so that the retry cannot see the receiver disabled but
  // not yet deleted.
  await env.pool.query(
    `UPDATE webhook_rx SET time_disabled = now(), disabled_reason = 'disabled by an operator',
       time_deleted = now()
     WHERE id = $1`,
    [rx.id],
  );
  const delivery = await waitForFinished(env.pool, eventId, rx.id);
  expect(delivery.failure_reason).toBe('receiver deleted');
  expect(await readDelivery(env.pool, eventId, rx.id)).toMatchObject({ state: 'failed' });
});

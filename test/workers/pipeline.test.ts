import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: RunningSystem;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env);
});

afterAll(async () => {
  await system?.stop();
  await env?.dispose();
});

async function attemptsOf(deliveryId: string) {
  const result = await env.pool.query(
    `SELECT attempt, result::text, response_status FROM webhook_delivery_attempt
     WHERE delivery_id = $1 ORDER BY attempt`,
    [deliveryId],
  );
  return result.rows;
}

describe('pipeline', () => {
  test('retries 500, 500 then delivers', async () => {
    const harness = await new ReceiverHarness((_request, index) => ({
      status: index < 2 ? 500 : 200,
    })).start();
    const created = await system.request('POST', '/v1/receivers', {
      name: 'flaky',
      endpoint: harness.url(),
      subscriptions: ['retry.*'],
    });
    expect(created.status).toBe(201);

    const published = await system.request('POST', '/v1/events', {
      event_class: 'retry.ping',
      data: { n: 1 },
    });
    expect(published.status).toBe(202);

    const delivery = await waitFor(async () => {
      const { rows } = await env.pool.query(
        `SELECT id::text, state::text, attempts FROM webhook_delivery WHERE event_id = $1`,
        [published.body.id],
      );
      return rows[0]?.state === 'delivered' ? rows[0] : undefined;
    });
    expect(delivery.attempts).toBe(3);
    expect(await attemptsOf(delivery.id)).toEqual([
      { attempt: 1, result: 'failed_http_error', response_status: 500 },
      { attempt: 2, result: 'failed_http_error', response_status: 500 },
      { attempt: 3, result: 'succeeded', response_status: 200 },
    ]);

    expect(harness.requests).toHaveLength(3);
    const verifier = new Webhook(created.body.secret);
    for (const request of harness.requests) {
      const payload = verifier.verify(request.body.toString('utf8'), {
        'webhook-id': String(request.headers['webhook-id']),
        'webhook-timestamp': String(request.headers['webhook-timestamp']),
        'webhook-signature': String(request.headers['webhook-signature']),
      }) as { data: unknown; delivery_id: string };
      expect(payload.data).toEqual({ n: 1 });
      expect(payload.delivery_id).toBe(delivery.id);
    }
    await harness.stop();
  });
});

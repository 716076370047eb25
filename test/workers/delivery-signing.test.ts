import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, test } from 'vitest';
import {
  expectConsistentAttempts,
  readAttempts,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { ReceiverHarness, type RecordedRequest } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';

// One retry after 1.5 s, so that the retry carries a later
// webhook-timestamp (whole seconds) than the first try.
const fixture = useSystem({ overrides: { RETRY_SCHEDULE_MS: '1500' } });
const harnesses: ReceiverHarness[] = [];

afterAll(async () => {
  await Promise.all(harnesses.map((harness) => harness.stop()));
});

async function startHarness(...args: ConstructorParameters<typeof ReceiverHarness>) {
  const harness = await new ReceiverHarness(...args).start();
  harnesses.push(harness);
  return harness;
}

function webhookHeaders(request: RecordedRequest, signature?: string) {
  return {
    'webhook-id': String(request.headers['webhook-id']),
    'webhook-timestamp': String(request.headers['webhook-timestamp']),
    'webhook-signature': signature ?? String(request.headers['webhook-signature']),
  };
}

/** Returns whether `standardwebhooks` accepts the request with `secret`. */
function verifies(secret: string, request: RecordedRequest, signature?: string): boolean {
  try {
    new Webhook(secret).verify(request.body.toString('utf8'), webhookHeaders(request, signature));
    return true;
  } catch {
    return false;
  }
}

describe('retried request', () => {
  test('retry keeps id and body', async () => {
    const { env, system } = fixture;
    const harness = await startHarness((_request, index) => ({ status: index === 0 ? 500 : 200 }));
    const rx = await createReceiver(system, {
      name: 'stable-id',
      endpoint: harness.url(),
      subscriptions: ['**'],
    });
    const eventId = await publishEvent(system, 'stable.created', { id: 'ord_1', total: 42 });

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'failed_http_error', 500],
      [2, 'succeeded', 200],
    ]);

    expect(harness.requests).toHaveLength(2);
    const [first, second] = harness.requests as [RecordedRequest, RecordedRequest];
    expect(first.headers['webhook-id']).toBe(delivery.id);
    expect(second.headers['webhook-id']).toBe(delivery.id);
    expect(second.bodySha256).toBe(first.bodySha256);

    const firstTimestamp = Number(first.headers['webhook-timestamp']);
    const secondTimestamp = Number(second.headers['webhook-timestamp']);
    expect(secondTimestamp).toBeGreaterThanOrEqual(firstTimestamp + 1);
    for (const request of [first, second]) {
      const timestamp = String(request.headers['webhook-timestamp']);
      expect(timestamp).toMatch(/^[0-9]{10}$/);
      expect(Math.abs(Number(timestamp) - request.arrivedAt / 1000)).toBeLessThanOrEqual(2);
      expect(verifies(rx.secret, request), `signature at ${timestamp}`).toBe(true);
    }

    const { rows } = await env.pool.query<{ time_created: Date }>(
      'SELECT time_created FROM webhook_event WHERE id = $1',
      [eventId],
    );
    const body = JSON.parse(first.body.toString('utf8'));
    expect(body).toEqual({
      event_class: 'stable.created',
      event_id: eventId,
      delivery_id: delivery.id,
      timestamp: rows[0]!.time_created.toISOString(),
      data: { id: 'ord_1', total: 42 },
    });
    expect(first.headers['content-type']).toBe('application/json');
    expect(Number(first.headers['content-length'])).toBe(first.body.length);
    await expectConsistentAttempts(env.pool);
  });
});

describe('secret rotation', () => {
  test('each live secret signs once', async () => {
    const { env, system } = fixture;
    const harness = await startHarness();
    const rx = await createReceiver(system, {
      name: 'two-secrets',
      endpoint: harness.url(),
      subscriptions: ['rotate.*'],
    });
    const added = await system.request('POST', `/v1/receivers/${rx.id}/secrets`, {});
    expect(added.status).toBe(201);
    const secrets = [rx.secret, added.body.secret as string];
    expect(secrets[1]).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    const eventId = await publishEvent(system, 'rotate.ping', { k: 'v' });

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    expect(harness.requests).toHaveLength(1);
    const request = harness.requests[0]!;
    const entries = String(request.headers['webhook-signature']).split(' ');
    expect(entries).toHaveLength(2);
    for (const entry of entries) {
      expect(entry).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    }
    // Each entry verifies with exactly one secret, and each secret with one entry.
    const matches = entries.map((entry) =>
      secrets.filter((secret) => verifies(secret, request, entry)),
    );
    expect(matches.map((list) => list.length)).toEqual([1, 1]);
    expect(new Set(matches.flat())).toEqual(new Set(secrets));
    expect(verifies(secrets[0]!, request)).toBe(true);
    expect(verifies(secrets[1]!, request)).toBe(true);
    await expectConsistentAttempts(env.pool);
  });
});

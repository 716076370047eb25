import { afterAll, describe, expect, test } from 'vitest';
import {
  expectConsistentAttempts,
  readAttempts,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import {
  createReceiver,
  publishEvent,
  useSystem,
  type SystemFixture,
} from '../helpers/system-fixture.js';

const servers: { stop(): Promise<void> }[] = [];

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
});

/**
 * Publishes an event to a receiver that responds with `status` and
 * `retryAfter` once and with 200 after that. Returns the ms between the two
 * requests.
 */
async function gapAfterFirstAnswer(
  fixture: SystemFixture,
  name: string,
  status: number,
  retryAfter: string,
): Promise<number> {
  const { env, system } = fixture;
  const harness = await new ReceiverHarness((_request, index) =>
    index === 0 ? { status, headers: { 'retry-after': retryAfter } } : { status: 200 },
  ).start();
  servers.push(harness);
  const rx = await createReceiver(system, {
    name,
    endpoint: harness.url(),
    subscriptions: [`${name}.*`],
  });
  const eventId = await publishEvent(system, `${name}.ping`);
  const delivery = await waitForFinished(env.pool, eventId, rx.id);
  expect(delivery.state).toBe('delivered');
  const attempts = await readAttempts(env.pool, delivery.id);
  expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
    [1, 'failed_http_error', status],
    [2, 'succeeded', 200],
  ]);
  expect(harness.requests).toHaveLength(2);
  return harness.requests[1]!.arrivedAt - harness.requests[0]!.arrivedAt;
}

describe('Retry-After above twice the delay', () => {
  // The first retry is scheduled 200 ms after attempt 1.
  const fixture = useSystem();

  test('503 Retry-After is clamped', async () => {
    // Retry-After requests 1000 ms, and twice the scheduled 200 ms is 400 ms.
    const gap = await gapAfterFirstAnswer(fixture, 'clamp503', 503, '1');
    expect(gap).toBeGreaterThanOrEqual(395);
    expect(gap).toBeLessThan(1_000);
    await expectConsistentAttempts(fixture.env.pool);
  });

  test('429 Retry-After is clamped', async () => {
    const gap = await gapAfterFirstAnswer(fixture, 'clamp429', 429, '1');
    expect(gap).toBeGreaterThanOrEqual(395);
    expect(gap).toBeLessThan(1_000);
    await expectConsistentAttempts(fixture.env.pool);
  });
});

describe('Retry-After within bounds', () => {
  // The first retry is scheduled 1000 ms after attempt 1.
  const fixture = useSystem({ overrides: { RETRY_SCHEDULE_MS: '1000' } });

  test('500 Retry-After is ignored', async () => {
    // Honoured, the header would move the retry from 1000 ms to 2000 ms.
    const gap = await gapAfterFirstAnswer(fixture, 'ignore500', 500, '2');
    expect(gap).toBeGreaterThanOrEqual(995);
    expect(gap).toBeLessThan(2_000);
    await expectConsistentAttempts(fixture.env.pool);
  });

  test('1.5 s Retry-After is honoured', async () => {
    const { env, system } = fixture;
    // Delay-seconds are whole numbers, so 1.5 s is sent as an HTTP date: the
    // response goes out at x.500 s and names the second x + 2.
    let answeredAt = 0;
    const receiver = await new ScriptedReceiver((_request, response, index) => {
      if (index > 0) {
        response.writeHead(200).end();
        return;
      }
      const untilHalfSecond = (1_500 - (Date.now() % 1_000)) % 1_000;
      setTimeout(() => {
        answeredAt = Date.now();
        const retryAt = new Date(Math.floor(answeredAt / 1_000) * 1_000 + 2_000);
        response.writeHead(503, { 'retry-after': retryAt.toUTCString() }).end();
      }, untilHalfSecond);
    }).start();
    servers.push(receiver);
    const rx = await createReceiver(system, {
      name: 'honoured',
      endpoint: receiver.url(),
      subscriptions: ['honoured.*'],
    });
    const eventId = await publishEvent(system, 'honoured.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'failed_http_error', 503],
      [2, 'succeeded', 200],
    ]);
    expect(receiver.requests).toHaveLength(2);
    const gap = receiver.requests[1]!.arrivedAt - answeredAt;
    // Clamping to either bound would give 1000 ms or 2000 ms instead of 1500 ms.
    expect(gap).toBeGreaterThanOrEqual(1_400);
    expect(gap).toBeLessThan(2_000);
    await expectConsistentAttempts(env.pool);
  });
});

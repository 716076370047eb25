import type http from 'node:http';
import { afterAll, describe, expect, test } from 'vitest';
import {
  expectConsistentAttempts,
  readAttempts,
  readDelivery,
  waitForAttempts,
  waitForFinished,
  type AttemptRow,
} from '../helpers/delivery-assertions.js';
import type { RecordedRequest } from '../helpers/receiver-harness.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';

// The test config's RETRY_SCHEDULE_MS=200,400 allows 3 attempts in total,
// and ATTEMPT_TIMEOUT_MS=2000 limits each one.
const BUDGET = 3;
const RESPONSE_BODY_LIMIT_BYTES = 65_536;
const LARGE_BODY_BYTES = 50 * 1024 * 1024;

const fixture = useSystem({ overrides: { DELIVERY_CONCURRENCY: '4' } });
const servers: { stop(): Promise<void> }[] = [];

async function startHarness(...args: ConstructorParameters<typeof ReceiverHarness>) {
  const harness = await new ReceiverHarness(...args).start();
  servers.push(harness);
  return harness;
}

async function startScripted(handler: ConstructorParameters<typeof ScriptedReceiver>[0]) {
  const receiver = await new ScriptedReceiver(handler).start();
  servers.push(receiver);
  return receiver;
}

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
});

/** Sends headers that promise 100 bytes, writes 10 and then nothing. */
function stallBody(_request: RecordedRequest, response: http.ServerResponse) {
  response.writeHead(200, { 'content-length': '100', 'content-type': 'text/plain' });
  response.write('0123456789');
}

/**
 * Checks that each attempt timed out, with no status, duration or reason,
 * and that its row was written 2.0 to 2.6 s after its request arrived. The
 * worker's timer starts before it connects, which takes up to about 100 ms
 * on a loaded 2-core machine, so the lower bound is 1.8 s.
 */
function expectTimedOut(attempts: AttemptRow[], requests: RecordedRequest[]) {
  expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
  expect(requests).toHaveLength(BUDGET);
  for (const [index, attempt] of attempts.entries()) {
    expect(attempt.result, `result of attempt ${attempt.attempt}`).toBe('failed_timeout');
    expect(attempt.response_status).toBeNull();
    expect(attempt.response_duration).toBeNull();
    expect(attempt.unreachable_reason).toBeNull();
    const elapsed = attempt.time_created.getTime() - requests[index]!.arrivedAt;
    expect(elapsed, `ms from request ${index + 1} to its row`).toBeGreaterThanOrEqual(1_800);
    expect(elapsed, `ms from request ${index + 1} to its row`).toBeLessThanOrEqual(2_600);
  }
}

describe('attempt timeout', () => {
  test('silent receiver times out', async () => {
    const { env, system } = fixture;
    const harness = await startHarness(() => 'hang');
    const rx = await createReceiver(system, {
      name: 'silent',
      endpoint: harness.url(),
      subscriptions: ['silent.*'],
    });
    const eventId = await publishEvent(system, 'silent.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expectTimedOut(await readAttempts(env.pool, delivery.id), harness.requests);
    await expectConsistentAttempts(env.pool);
  });

  test('stalled body times out', async () => {
    const { env, system } = fixture;
    const receiver = await startScripted(stallBody);
    const rx = await createReceiver(system, {
      name: 'stalled-body',
      endpoint: receiver.url(),
      subscriptions: ['stalled.*'],
    });
    const eventId = await publishEvent(system, 'stalled.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    const attempts = await readAttempts(env.pool, delivery.id);
    expectTimedOut(attempts, receiver.requests);
    expect(attempts.some((a) => a.result === 'succeeded')).toBe(false);
    // The worker closes the socket of a timed-out attempt instead of reusing it.
    await waitFor(() => receiver.openSockets() === 0, {
      timeoutMs: 1_000,
      message: 'sockets of the stalled receiver to close',
    });
    await expectConsistentAttempts(env.pool);
  });
});

describe('large response body', () => {
  test('50 MB body is truncated', async () => {
    const { env, system } = fixture;
    const streams = [
      { name: 'large-with-length', withLength: true, written: 0, closedEarly: false },
      { name: 'large-chunked', withLength: false, written: 0, closedEarly: false },
    ];
    const receivers = [];
    for (const stream of streams) {
      const receiver = await startScripted((_request, response) => {
        response.writeHead(
          200,
          stream.withLength ? { 'content-length': String(LARGE_BODY_BYTES) } : {},
        );
        const chunk = Buffer.alloc(64 * 1024, 'x');
        response.on('close', () => {
          stream.closedEarly = !response.writableFinished;
        });
        const writeMore = () => {
          while (stream.written < LARGE_BODY_BYTES && !response.destroyed) {
            stream.written += chunk.length;
            if (!response.write(chunk)) {
              response.once('drain', writeMore);
              return;
            }
          }
          if (!response.destroyed) response.end();
        };
        writeMore();
      });
      const rx = await createReceiver(system, {
        name: stream.name,
        endpoint: receiver.url(),
        subscriptions: ['large.*'],
      });
      receivers.push({ stream, receiver, rx });
    }
    const eventId = await publishEvent(system, 'large.ping');

    for (const { stream, receiver, rx } of receivers) {
      const delivery = await waitForFinished(env.pool, eventId, rx.id);
      expect(delivery.state, `state of ${stream.name}`).toBe('delivered');
      const [attempt, ...rest] = await readAttempts(env.pool, delivery.id);
      expect(rest).toHaveLength(0);
      expect(attempt!.result).toBe('succeeded');
      expect(attempt!.response_status).toBe(200);
      expect(attempt!.response_body_bytes).toBe(RESPONSE_BODY_LIMIT_BYTES);
      const elapsed = attempt!.time_created.getTime() - receiver.requests[0]!.arrivedAt;
      // The attempt ends when the cap is reached, before its 2 s timeout.
      expect(elapsed, `ms from request to row for ${stream.name}`).toBeLessThan(2_000);

      await waitFor(() => receiver.openSockets() === 0, {
        timeoutMs: 1_000,
        message: `sockets of ${stream.name} to close`,
      });
      expect(stream.closedEarly, `socket of ${stream.name} closed early`).toBe(true);
      expect(stream.written).toBeLessThan(LARGE_BODY_BYTES);
    }
    await expectConsistentAttempts(env.pool);
  });
});

describe('concurrency', () => {
  test('slow receivers leave fast one alone', async () => {
    const { env, system } = fixture;
    const slow = [
      await startHarness(() => 'hang'),
      await startHarness(() => 'hang'),
      await startScripted(stallBody),
    ];
    for (const [index, receiver] of slow.entries()) {
      await createReceiver(system, {
        name: `slow-${index}`,
        endpoint: receiver.url(),
        subscriptions: ['mixed.*'],
      });
    }
    const fast = await startHarness(() => ({ status: 200, body: '{}' }));
    const fastRx = await createReceiver(system, {
      name: 'fast',
      endpoint: fast.url(),
      subscriptions: ['mixed.*'],
    });
    const eventId = await publishEvent(system, 'mixed.ping');

    const [attempt] = await waitForAttempts(env.pool, eventId, fastRx.id, 1);
    expect(attempt!.result).toBe('succeeded');
    const { rows } = await env.pool.query<{ time_dispatched: Date }>(
      'SELECT time_dispatched FROM webhook_event WHERE id = $1',
      [eventId],
    );
    const sinceDispatch = attempt!.time_created.getTime() - rows[0]!.time_dispatched.getTime();
    expect(sinceDispatch).toBeLessThan(1_000);
    expect((await readDelivery(env.pool, eventId, fastRx.id))!.state).toBe('delivered');
    expect(fast.requests).toHaveLength(1);
    await expectConsistentAttempts(env.pool);
  });
});

import { afterAll, describe, expect, test } from 'vitest';
import {
  expectConsistentAttempts,
  readAttempts,
  readDelivery,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { deliveryJobState } from '../helpers/queue-inspection.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import { stubDnsLookup } from '../helpers/stub-dns.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { closedLoopbackPort } from '../helpers/tcp-sentinel.js';

// The test config's RETRY_SCHEDULE_MS=200,400 allows 3 attempts in total.
const BUDGET = 3;
const RESPONSE_BODY_LIMIT_BYTES = 65_536;

const dns = stubDnsLookup({ 'rx-missing.invalid': { error: 'ENOTFOUND' } });
const fixture = useSystem({ dnsLookup: dns.lookup });
const harnesses: ReceiverHarness[] = [];
const scriptedReceivers: ScriptedReceiver[] = [];

async function startHarness(...args: ConstructorParameters<typeof ReceiverHarness>) {
  const harness = await new ReceiverHarness(...args).start();
  harnesses.push(harness);
  return harness;
}

afterAll(async () => {
  await Promise.all(harnesses.map((harness) => harness.stop()));
  await Promise.all(scriptedReceivers.map((receiver) => receiver.stop()));
});

describe('retry budget', () => {
  test('403 receiver fails after three attempts', async () => {
    const { env, system } = fixture;
    const harness = await startHarness(() => ({ status: 403, body: 'nope' }));
    const rx = await createReceiver(system, {
      name: 'always-403',
      endpoint: harness.url(),
      subscriptions: ['budget.*'],
    });
    const eventId = await publishEvent(system, 'budget.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expect(delivery.time_completed).toBeInstanceOf(Date);
    expect(delivery.attempts).toBe(BUDGET);
    expect(delivery.failure_reason).toBeNull();

    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    for (const attempt of attempts) {
      expect(attempt.result).toBe('failed_http_error');
      expect(attempt.response_status).toBe(403);
      expect(attempt.response_body).toBe('nope');
      expect(attempt.response_duration).toBeGreaterThanOrEqual(0);
      expect(attempt.unreachable_reason).toBeNull();
    }

    expect(harness.requests).toHaveLength(BUDGET);
    expect(harness.requests.map((r) => r.method)).toEqual(['POST', 'POST', 'POST']);
    const [first, second, third] = harness.requests.map((r) => r.arrivedAt) as [
      number,
      number,
      number,
    ];
    // Jitter is 0 in the test config, so each gap is at least its delay.
    expect(second - first).toBeGreaterThanOrEqual(195);
    expect(second - first).toBeLessThan(1_200);
    expect(third - second).toBeGreaterThanOrEqual(395);
    expect(third - second).toBeLessThan(1_400);

    const jobState = await deliveryJobState(system.config, delivery.id);
    expect(['waiting', 'active', 'delayed', 'prioritized']).not.toContain(jobState);

    // Longer than the whole schedule: a fourth attempt would show up by now.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(harness.requests).toHaveLength(BUDGET);
    expect(await readAttempts(env.pool, delivery.id)).toHaveLength(BUDGET);
    await expectConsistentAttempts(env.pool);
  });
});

describe('unreachable receivers', () => {
  test('refused connection is retried to budget', async () => {
    const { env, system } = fixture;
    const port = await closedLoopbackPort();
    const rx = await createReceiver(system, {
      name: 'refused',
      endpoint: `http://127.0.0.1:${port}/hook`,
      subscriptions: ['refused.*'],
    });
    const eventId = await publishEvent(system, 'refused.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expect(delivery.attempts).toBe(BUDGET);

    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    for (const attempt of attempts) {
      expect(attempt.result).toBe('failed_unreachable');
      expect(attempt.unreachable_reason).toContain('ECONNREFUSED');
      expect(attempt.response_status).toBeNull();
      expect(attempt.response_duration).toBeNull();
      expect(attempt.response_body).toBeNull();
    }
    await expectConsistentAttempts(env.pool);
  });

  test('DNS failure is retried, not final', async () => {
    const { env, system } = fixture;
    const rx = await createReceiver(system, {
      name: 'missing-name',
      endpoint: 'http://rx-missing.invalid/hook',
      subscriptions: ['dns.*'],
    });
    const queriesBefore = dns.queries.length;
    const eventId = await publishEvent(system, 'dns.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('failed');
    expect(delivery.attempts).toBe(BUDGET);

    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    for (const attempt of attempts) {
      expect(attempt.result).toBe('failed_unreachable');
      expect(attempt.unreachable_reason).toContain('ENOTFOUND');
      expect(attempt.response_status).toBeNull();
      expect(attempt.response_duration).toBeNull();
    }
    // Attempt 1 did not end the delivery: the later attempts come after it.
    expect(attempts[1]!.time_created.getTime()).toBeGreaterThan(
      attempts[0]!.time_created.getTime(),
    );
    expect(dns.queries.slice(queriesBefore)).toEqual([
      'rx-missing.invalid',
      'rx-missing.invalid',
      'rx-missing.invalid',
    ]);
    await expectConsistentAttempts(env.pool);
  });
});

describe('keep-alive', () => {
  test('retries reuse one connection', async () => {
    const { env, system } = fixture;
    const receiver = await new ScriptedReceiver((_request, response, index) => {
      response.writeHead(index < 2 ? 500 : 200).end('done');
    }).start();
    scriptedReceivers.push(receiver);
    const rx = await createReceiver(system, {
      name: 'keep-alive',
      endpoint: receiver.url(),
      subscriptions: ['reuse.*'],
    });
    const eventId = await publishEvent(system, 'reuse.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    expect(receiver.requests).toHaveLength(3);
    expect(receiver.connections).toBe(1);
    await expectConsistentAttempts(env.pool);
  });
});

describe('stored response body', () => {
  test('NUL bytes in body are recorded', async () => {
    const { env, system } = fixture;
    const harness = await startHarness((_request, index) =>
      index === 0 ? { status: 500, body: 'bad\u0000byte' } : { status: 200, body: 'ok\u0000' },
    );
    const rx = await createReceiver(system, {
      name: 'nul-body',
      endpoint: harness.url(),
      subscriptions: ['nul.*'],
    });
    const eventId = await publishEvent(system, 'nul.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    expect(harness.requests).toHaveLength(2);

    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'failed_http_error', 500],
      [2, 'succeeded', 200],
    ]);
    // PostgreSQL text cannot contain U+0000, so it is stored as U+FFFD.
    expect(attempts[0]!.response_body).toBe('bad\uFFFDbyte');
    expect(attempts[1]!.response_body).toBe('ok\uFFFD');
    await expectConsistentAttempts(env.pool);
  });

  test('multibyte body stays within limit', async () => {
    const { env, system } = fixture;
    // 3-byte characters: the limit of 65,536 bytes falls inside one.
    const harness = await startHarness(() => ({ status: 200, body: '€'.repeat(30_000) }));
    const rx = await createReceiver(system, {
      name: 'multibyte-body',
      endpoint: harness.url(),
      subscriptions: ['euro.*'],
    });
    const eventId = await publishEvent(system, 'euro.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    const [attempt] = await readAttempts(env.pool, delivery.id);
    expect(attempt!.response_body_bytes).toBeLessThanOrEqual(RESPONSE_BODY_LIMIT_BYTES);
    expect(attempt!.response_body).toBe('€'.repeat(21_845));
    await expectConsistentAttempts(env.pool);
  });

  test('invalid UTF-8 stays within limit', async () => {
    const { env, system } = fixture;
    // Each 0xff byte decodes to U+FFFD, which takes 3 bytes as UTF-8.
    const receiver = await new ScriptedReceiver((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      response.end(Buffer.alloc(70_000, 0xff));
    }).start();
    scriptedReceivers.push(receiver);
    const rx = await createReceiver(system, {
      name: 'binary-body',
      endpoint: receiver.url(),
      subscriptions: ['binary.*'],
    });
    const eventId = await publishEvent(system, 'binary.ping');

    const delivery = await waitForFinished(env.pool, eventId, rx.id);
    expect(delivery.state).toBe('delivered');
    const [attempt] = await readAttempts(env.pool, delivery.id);
    expect(attempt!.result).toBe('succeeded');
    expect(attempt!.response_body_bytes).toBeLessThanOrEqual(RESPONSE_BODY_LIMIT_BYTES);
    expect(attempt!.response_body_bytes).toBeGreaterThan(0);
    expect(await readDelivery(env.pool, eventId, rx.id)).toMatchObject({ attempts: 1 });
    await expectConsistentAttempts(env.pool);
  });
});

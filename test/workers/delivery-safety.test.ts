import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DeliveryWorkerHandle } from '../../workers/delivery/delivery-worker.js';
import { startDeliveryWorker } from '../../workers/delivery/delivery-worker.js';
import {
  expectConsistentAttempts,
  readAttempts,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { captureLogs } from '../helpers/log-capture.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import { stubDnsLookup } from '../helpers/stub-dns.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { TcpSentinel } from '../helpers/tcp-sentinel.js';

// The test config's RETRY_SCHEDULE_MS=200,400 allows 3 attempts in total.
const BUDGET = 3;

describe('redirects', () => {
  // The delivery worker is started here with a logger whose lines the test reads.
  const fixture = useSystem({ delivery: false });
  const logs = captureLogs('info');
  const sentinel4 = new TcpSentinel('127.0.0.1');
  const sentinel6 = new TcpSentinel('::1');
  const harnesses: ReceiverHarness[] = [];
  let worker: DeliveryWorkerHandle;
  let port4 = 0;
  let port6 = 0;

  beforeAll(async () => {
    port4 = await sentinel4.start();
    port6 = await sentinel6.start();
    worker = startDeliveryWorker(fixture.system.config, logs.logger);
  });

  afterAll(async () => {
    await worker?.close();
    await Promise.all(harnesses.map((harness) => harness.stop()));
    await sentinel4.stop();
    await sentinel6.stop();
  });

  test('3xx responses are never followed', async () => {
    const { env, system } = fixture;
    const cases = [
      { status: 301, location: `http://127.0.0.1:${port4}/x` },
      { status: 302, location: `http://127.0.0.1:${port4}/x` },
      { status: 303, location: `http://127.0.0.1:${port4}/x` },
      { status: 307, location: `http://127.0.0.1:${port4}/x` },
      { status: 308, location: `http://127.0.0.1:${port4}/x` },
      { status: 302, location: `//[::1]:${port6}/x` },
    ];
    const receivers = [];
    for (const [index, { status, location }] of cases.entries()) {
      const harness = await new ReceiverHarness(() => ({
        status,
        headers: { location },
      })).start();
      harnesses.push(harness);
      const rx = await createReceiver(system, {
        name: `redirect-${index}-${status}`,
        endpoint: harness.url(),
        subscriptions: ['redirect.*'],
      });
      receivers.push({ status, location, harness, rx });
    }
    const eventId = await publishEvent(system, 'redirect.ping');

    for (const { status, location, harness, rx } of receivers) {
      const delivery = await waitForFinished(env.pool, eventId, rx.id);
      expect(delivery.state, `state after ${status}`).toBe('failed');
      const attempts = await readAttempts(env.pool, delivery.id);
      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      for (const attempt of attempts) {
        expect(attempt.result, `result of a ${status}`).toBe('failed_http_error');
        expect(attempt.response_status).toBe(status);
      }
      expect(harness.requests, `requests to the ${status} receiver`).toHaveLength(BUDGET);
      expect(harness.requests.every((r) => r.method === 'POST')).toBe(true);

      const logged = logs.records.filter(
        (record) => record.deliveryId === delivery.id && record.location === location,
      );
      expect(logged.length, `log lines naming ${location}`).toBe(BUDGET);
      expect(logged[0]!.rxId).toBe(rx.id);
    }
    expect(sentinel4.accepted).toBe(0);
    expect(sentinel6.accepted).toBe(0);
    await expectConsistentAttempts(env.pool);
  });
});

describe('private addresses from DNS', () => {
  const dns = stubDnsLookup({
    'hook.test': ['127.0.0.1'],
    'hook6.test': ['::1'],
    'mapped.test': ['::ffff:127.0.0.1'],
  });
  // With an empty allow-list, loopback is refused like any private network.
  const fixture = useSystem({
    overrides: { ALLOWED_PRIVATE_NETWORKS: '' },
    dnsLookup: dns.lookup,
  });
  const receiver = new ScriptedReceiver((_request, response) => {
    response.writeHead(200).end();
  });
  let port = 0;

  beforeAll(async () => {
    await receiver.start();
    port = Number(new URL(receiver.url()).port);
  });

  afterAll(async () => {
    await receiver.stop();
  });

  test('literal loopback endpoint is rejected', async () => {
    const response = await fixture.system.request('POST', '/v1/receivers', {
      name: 'literal-loopback',
      endpoint: receiver.url(),
      subscriptions: ['guard.*'],
    });
    expect(response.status).toBe(400);
  });

  test('names resolving to loopback are refused', async () => {
    const { env, system } = fixture;
    const names = ['hook.test', 'hook6.test', 'mapped.test'];
    const receivers = [];
    for (const name of names) {
      const rx = await createReceiver(system, {
        name: `resolves-${name.replace('.', '-')}`,
        endpoint: `http://${name}:${port}/hook`,
        subscriptions: ['guard.*'],
      });
      receivers.push({ name, rx });
    }
    const eventId = await publishEvent(system, 'guard.ping');

    for (const { name, rx } of receivers) {
      const delivery = await waitForFinished(env.pool, eventId, rx.id);
      expect(delivery.state, `state of ${name}`).toBe('failed');
      const attempts = await readAttempts(env.pool, delivery.id);
      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      for (const attempt of attempts) {
        expect(attempt.result, `result of ${name}`).toBe('failed_unreachable');
        expect(attempt.unreachable_reason).toContain('loopback, private, link-local or reserved');
        expect(attempt.response_status).toBeNull();
        expect(attempt.response_duration).toBeNull();
      }
    }
    expect(receiver.connections).toBe(0);
    expect(receiver.requests).toHaveLength(0);
    for (const name of names) {
      expect(dns.queries.filter((query) => query === name)).toHaveLength(BUDGET);
    }
    await expectConsistentAttempts(env.pool);
  });
});

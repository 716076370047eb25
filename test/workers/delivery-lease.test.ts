import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import { startDeliveryWorker } from '../../workers/delivery/delivery-worker.js';
import { DeliveryStore } from '../../workers/delivery/delivery-store.js';
import type { AttemptOutcome } from '../../workers/delivery/send-request.js';
import {
  expectConsistentAttempts,
  readAttempts,
  readDelivery,
  waitForAttempts,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { captureLogs } from '../helpers/log-capture.js';
import { deliveryJobCounts, deliveryJobState } from '../helpers/queue-inspection.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';

const servers: { stop(): Promise<void> }[] = [];

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
});

/** Starts a delivery worker that stops when the current test ends. */
function startWorkerForTest(config: Config, logger: Logger) {
  const worker = startDeliveryWorker(config, logger);
  onTestFinished(() => worker.close());
  return worker;
}

async function startHarness(...args: ConstructorParameters<typeof ReceiverHarness>) {
  const harness = await new ReceiverHarness(...args).start();
  servers.push(harness);
  return harness;
}

const SUCCEEDED: AttemptOutcome = {
  result: 'succeeded',
  responseStatus: 200,
  responseDurationMs: 5,
  responseBody: 'ok',
  unreachableReason: null,
};

describe('delivery lease', () => {
  const fixture = useSystem({ delivery: false });

  test('stale holder records nothing', async () => {
    const { env, system } = fixture;
    const harness = await startHarness();
    const rx = await createReceiver(system, {
      name: 'leased',
      endpoint: harness.url(),
      subscriptions: ['lease.*'],
    });
    const eventId = await publishEvent(system, 'lease.ping');
    const pending = await waitFor(() => readDelivery(env.pool, eventId, rx.id));

    const leaseTimeoutMs = 500;
    const first = new DeliveryStore(env.pool, 'worker-first', leaseTimeoutMs);
    const second = new DeliveryStore(env.pool, 'worker-second', leaseTimeoutMs);

    const firstClaim = await first.claim(pending.id);
    expect(firstClaim.kind).toBe('claimed');
    const secondClaim = await second.claim(pending.id);
    expect(secondClaim.kind).toBe('leased');
    if (secondClaim.kind === 'leased') {
      expect(secondClaim.leaseExpiresInMs).toBeGreaterThan(0);
      expect(secondClaim.leaseExpiresInMs).toBeLessThanOrEqual(leaseTimeoutMs);
    }

    await new Promise((resolve) => setTimeout(resolve, leaseTimeoutMs + 100));
    const takeover = await second.claim(pending.id);
    expect(takeover.kind).toBe('claimed');
    expect((await readDelivery(env.pool, eventId, rx.id))!.deliverator_id).toBe('worker-second');

    if (firstClaim.kind !== 'claimed' || takeover.kind !== 'claimed') return;
    const staleWrite = await first.recordAttempt(firstClaim.delivery, SUCCEEDED, 'delivered');
    expect(staleWrite).toBe(false);
    const afterStale = await readDelivery(env.pool, eventId, rx.id);
    expect(afterStale!.state).toBe('pending');
    expect(afterStale!.attempts).toBe(0);
    expect(afterStale!.time_completed).toBeNull();
    expect(await readAttempts(env.pool, pending.id)).toHaveLength(0);

    const currentWrite = await second.recordAttempt(takeover.delivery, SUCCEEDED, 'delivered');
    expect(currentWrite).toBe(true);
    const attempts = await readAttempts(env.pool, pending.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.deliverator_id])).toEqual([
      [1, 'succeeded', 'worker-second'],
    ]);
    expect((await readDelivery(env.pool, eventId, rx.id))!.state).toBe('delivered');
    expect(harness.requests).toHaveLength(0);
    await expectConsistentAttempts(env.pool);
  });
});

describe('receiver deleted after dispatch', () => {
  // Deliveries wait 1 s before a retry, long enough to delete a receiver in between.
  const fixture = useSystem({
    delivery: false,
    overrides: { RETRY_SCHEDULE_MS: '1000,1000' },
  });

  async function dispatchToTwo(prefix: string, answerDeleted: () => number) {
    const { env, system } = fixture;
    const deletedHarness = await startHarness(() => ({ status: answerDeleted() }));
    const keptHarness = await startHarness();
    const deleted = await createReceiver(system, {
      name: `${prefix}-deleted`,
      endpoint: deletedHarness.url(),
      subscriptions: [`${prefix}.*`],
    });
    const kept = await createReceiver(system, {
      name: `${prefix}-kept`,
      endpoint: keptHarness.url(),
      subscriptions: [`${prefix}.*`],
    });
    const eventId = await publishEvent(system, `${prefix}.ping`);
    const deletedDelivery = await waitFor(() => readDelivery(env.pool, eventId, deleted.id));
    await waitFor(() => readDelivery(env.pool, eventId, kept.id));
    return { eventId, deleted, kept, deletedHarness, keptHarness, deletedDelivery };
  }

  test('deleted receiver gets no request', async () => {
    const { env, system } = fixture;
    const setup = await dispatchToTwo('gone', () => 200);
    const removed = await system.request('DELETE', `/v1/receivers/${setup.deleted.id}`);
    expect(removed.status).toBe(204);

    const logs = captureLogs('info');
    startWorkerForTest(system.config, logs.logger);

    const delivery = await waitForFinished(env.pool, setup.eventId, setup.deleted.id, 5_000);
    expect(delivery.state).toBe('failed');
    expect(delivery.failure_reason).toBe('receiver deleted');
    expect(delivery.attempts).toBe(0);
    expect(await readAttempts(env.pool, delivery.id)).toHaveLength(0);

    const keptDelivery = await waitForFinished(env.pool, setup.eventId, setup.kept.id);
    expect(keptDelivery.state).toBe('delivered');
    expect(setup.keptHarness.requests).toHaveLength(1);

    // Long enough for a retried job to show up again.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(setup.deletedHarness.requests).toHaveLength(0);
    expect(await deliveryJobState(system.config, delivery.id)).toBe('unknown');
    expect((await deliveryJobCounts(system.config)).failed).toBe(0);

    const ended = logs.records.filter((record) => record.deliveryId === delivery.id);
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({
      msg: 'delivery ended without a request',
      reason: 'receiver deleted',
      eventId: setup.eventId,
      rxId: setup.deleted.id,
    });
    await expectConsistentAttempts(env.pool);
  });

  test('deletion during backoff stops retries', async () => {
    const { env, system } = fixture;
    const setup = await dispatchToTwo('backoff', () => 500);
    startWorkerForTest(system.config, captureLogs('info').logger);

    await waitForAttempts(env.pool, setup.eventId, setup.deleted.id, 1);
    const removed = await system.request('DELETE', `/v1/receivers/${setup.deleted.id}`);
    expect(removed.status).toBe(204);

    const delivery = await waitForFinished(env.pool, setup.eventId, setup.deleted.id, 5_000);
    expect(delivery.state).toBe('failed');
    expect(delivery.failure_reason).toBe('receiver deleted');
    expect(delivery.attempts).toBe(1);
    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'failed_http_error', 500],
    ]);
    expect(setup.deletedHarness.requests).toHaveLength(1);
    expect((await waitForFinished(env.pool, setup.eventId, setup.kept.id)).state).toBe(
      'delivered',
    );
    await expectConsistentAttempts(env.pool);
  });

  test('hard-deleted receiver leaves no job', async () => {
    const { env, system } = fixture;
    const setup = await dispatchToTwo('purged', () => 200);
    await env.pool.query('DELETE FROM webhook_rx WHERE id = $1', [setup.deleted.id]);
    expect(await readDelivery(env.pool, setup.eventId, setup.deleted.id)).toBeUndefined();
    startWorkerForTest(system.config, captureLogs('info').logger);

    expect((await waitForFinished(env.pool, setup.eventId, setup.kept.id)).state).toBe(
      'delivered',
    );
    await waitFor(
      async () => (await deliveryJobState(system.config, setup.deletedDelivery.id)) === 'unknown',
      { timeoutMs: 5_000, message: 'job of the removed delivery to end' },
    );
    expect(setup.deletedHarness.requests).toHaveLength(0);
    expect((await deliveryJobCounts(system.config)).failed).toBe(0);
    await expectConsistentAttempts(env.pool);
  });
});

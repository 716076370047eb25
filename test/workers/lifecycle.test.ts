// Signals and crashes of real worker processes: each test starts
// `node --import tsx workers/<role>/main.ts` the way operators run it, and
// sends it SIGTERM, two signals or SIGKILL while it has a delivery in flight.
import { afterAll, describe, expect, test } from 'vitest';
import { EXIT_CODE_SECOND_SIGNAL } from '../../shared/lifecycle.js';
import {
  expectConsistentAttempts,
  readAttempts,
  readDelivery,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';
import {
  formatLines,
  linesWithMessage,
  useWorkerProcesses,
  workerEnvironment,
  type TestWorker,
} from '../helpers/worker-processes.js';

/** Time that the receiver takes to respond to each request. */
const RESPONSE_DELAY_MS = 2_000;

/**
 * Short settings, so that a crashed worker's delivery comes back within
 * seconds. The attempt timeout leaves room for the slow receiver.
 */
const SETTINGS = {
  ATTEMPT_TIMEOUT_MS: '4000',
  LEASE_TIMEOUT_MS: '5000',
  JOB_LOCK_DURATION_MS: '2000',
  STALLED_INTERVAL_MS: '1000',
  SHUTDOWN_GRACE_MS: '6000',
};
const LEASE_TIMEOUT_MS = Number(SETTINGS.LEASE_TIMEOUT_MS);
const SHUTDOWN_GRACE_MS = Number(SETTINGS.SHUTDOWN_GRACE_MS);

/**
 * Maximum time from a worker's death until its delivery can be sent again,
 * once a live worker runs: BullMQ moves the job back to wait within
 * max(lockDuration, stalledInterval) + stalledInterval, and a worker that
 * finds the lease still held tries again 1 s after it expires. The README's
 * "Crash safety" section states the same bound.
 */
const RECOVERY_BOUND_MS = Math.max(
  Math.max(Number(SETTINGS.JOB_LOCK_DURATION_MS), Number(SETTINGS.STALLED_INTERVAL_MS)) +
    Number(SETTINGS.STALLED_INTERVAL_MS),
  LEASE_TIMEOUT_MS + 1_000,
);
/** Allowance for queue latency and a loaded machine. */
const SLACK_MS = 3_000;

const fixture = useSystem({ delivery: false, overrides: SETTINGS });
const workers = useWorkerProcesses();
const receivers: ScriptedReceiver[] = [];

afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.stop()));
});

/** Starts a receiver that responds 200 after RESPONSE_DELAY_MS and registers it for `eventClass`. */
async function slowReceiver(name: string, eventClass: string) {
  const receiver = await new ScriptedReceiver((_request, response) => {
    setTimeout(() => {
      if (!response.destroyed) response.writeHead(200).end('ok');
    }, RESPONSE_DELAY_MS);
  }).start();
  receivers.push(receiver);
  const rx = await createReceiver(fixture.system, {
    name,
    endpoint: receiver.url(),
    subscriptions: [eventClass],
  });
  return { receiver, rx };
}

function startDeliveryWorker(): Promise<TestWorker> {
  return workers.start('delivery', workerEnvironment(fixture.env, SETTINGS));
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

describe('delivery worker signals', () => {
  test('SIGTERM finishes held delivery', async () => {
    const { env, system } = fixture;
    const { receiver, rx } = await slowReceiver('term-rx', 'lifecycle.term');
    const worker = await startDeliveryWorker();
    const eventId = await publishEvent(system, 'lifecycle.term');
    await waitFor(() => receiver.requests.length === 1, {
      message: 'the request to reach the receiver',
    });

    const signalledAt = performance.now();
    expect(worker.process.signal('SIGTERM')).toBe(true);
    const status = await worker.process.exited;
    const stopMs = status.at - signalledAt;

    expect(status, formatLines(worker.lines)).toMatchObject({ code: 0, signal: null });
    expect(stopMs).toBeLessThan(SHUTDOWN_GRACE_MS);
    // It waited for the response instead of dropping the request.
    expect(stopMs).toBeGreaterThan(RESPONSE_DELAY_MS / 2);
    expect(linesWithMessage(worker, 'stopping')).toHaveLength(1);
    expect(linesWithMessage(worker, 'closed within the grace period; exiting 0')).toHaveLength(1);

    const delivery = await readDelivery(env.pool, eventId, rx.id);
    expect(delivery?.state).toBe('delivered');
    expect(delivery?.attempts).toBe(1);
    const attempts = await readAttempts(env.pool, delivery!.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'succeeded', 200],
    ]);
    expect(attempts[0]!.response_duration).toBeGreaterThanOrEqual(RESPONSE_DELAY_MS - 100);
    expect(receiver.requests).toHaveLength(1);
    await expectConsistentAttempts(env.pool);
  });

  test('second signal exits at once', async () => {
    const { env, system } = fixture;
    const { receiver, rx } = await slowReceiver('twice-rx', 'lifecycle.twice');
    const worker = await startDeliveryWorker();
    const eventId = await publishEvent(system, 'lifecycle.twice');
    await waitFor(() => receiver.requests.length === 1, {
      message: 'the request to reach the receiver',
    });

    worker.process.signal('SIGTERM');
    await waitFor(() => linesWithMessage(worker, 'stopping').length === 1, {
      message: 'the worker to log that it is stopping',
    });
    const secondAt = performance.now();
    worker.process.signal('SIGINT');
    const status = await worker.process.exited;

    expect(status, formatLines(worker.lines)).toMatchObject({
      code: EXIT_CODE_SECOND_SIGNAL,
      signal: null,
    });
    expect(status.at - secondAt).toBeLessThan(1_000);
    expect(linesWithMessage(worker, 'second signal; exiting now')).toHaveLength(1);
    const cut = await readDelivery(env.pool, eventId, rx.id);
    expect(cut?.state).toBe('pending');
    expect(cut?.attempts).toBe(0);

    // The delivery it held is not lost: the next worker sends it again.
    const replacement = await startDeliveryWorker();
    const delivery = await waitForFinished(env.pool, eventId, rx.id, RECOVERY_BOUND_MS + 15_000);
    expect(delivery.state).toBe('delivered');
    expect(
      (await readAttempts(env.pool, delivery.id)).map((a) => [a.attempt, a.result]),
    ).toEqual([[1, 'succeeded']]);
    expect(receiver.requests).toHaveLength(2);
    await expectConsistentAttempts(env.pool);
    expect((await replacement.process.stop()).code).toBe(0);
  });
});

describe('delivery worker SIGKILL', () => {
  test('held delivery finishes within bound', async () => {
    const { env, system } = fixture;
    const { receiver, rx } = await slowReceiver('killed-rx', 'lifecycle.killed');
    const worker = await startDeliveryWorker();
    const eventId = await publishEvent(system, 'lifecycle.killed');
    await waitFor(() => receiver.requests.length === 1, {
      message: 'the request to reach the receiver',
    });

    const killedAt = performance.now();
    worker.process.signal('SIGKILL');
    expect((await worker.process.exited).signal).toBe('SIGKILL');
    const replacement = await startDeliveryWorker();
    const startupMs = replacement.readyAt - killedAt;

    await waitFor(() => receiver.requests.length === 2, {
      timeoutMs: RECOVERY_BOUND_MS + startupMs + SLACK_MS,
      message: `the delivery to be sent again within ${RECOVERY_BOUND_MS} ms of the kill plus ${Math.round(startupMs)} ms of start-up`,
    });
    const [first, second] = receiver.requests;
    // The lease kept the replacement from sending before it expired.
    expect(second!.arrivedAt - first!.arrivedAt).toBeGreaterThanOrEqual(LEASE_TIMEOUT_MS - 250);
    // The same delivery, sent as the same attempt, since the first was never recorded.
    expect(header(second!.headers['webhook-id'])).toBe(header(first!.headers['webhook-id']));
    expect(header(first!.headers['x-webhook-attempt'])).toBe('1');
    expect(header(second!.headers['x-webhook-attempt'])).toBe('1');
    expect(second!.bodySha256).toBe(first!.bodySha256);

    const delivery = await waitForFinished(env.pool, eventId, rx.id, 10_000);
    expect(delivery.state).toBe('delivered');
    const attempts = await readAttempts(env.pool, delivery.id);
    expect(attempts.map((a) => [a.attempt, a.result, a.deliverator_id])).toEqual([
      [1, 'succeeded', expect.stringContaining(`:${replacement.process.pid}:`)],
    ]);
    await expectConsistentAttempts(env.pool);
    expect((await replacement.process.stop()).code).toBe(0);
  });
});

describe('dispatch worker signals', () => {
  test('idle worker exits 0 on SIGTERM', async () => {
    const worker = await workers.start('dispatch', workerEnvironment(fixture.env, SETTINGS));
    const status = await worker.process.stop();
    expect(status, formatLines(worker.lines)).toMatchObject({ code: 0, signal: null });
    expect(linesWithMessage(worker, 'dispatch worker stopped')).toHaveLength(1);
  });
});

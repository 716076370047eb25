// Ordered delivery across three delivery worker processes. An ordered
// receiver gets one request at a time, in event order, while retries and a
// failure for good hold up the events after them and one worker is killed
// mid-request. An unordered receiver of the same events gets full
// concurrency.
import { afterAll, describe, expect, test } from 'vitest';
import { expectConsistentAttempts } from '../helpers/delivery-assertions.js';
import type { RecordedRequest } from '../helpers/receiver-harness.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import { useSystem, type CreatedReceiver, type SystemFixture } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';
import {
  formatLines,
  SHORT_LEASE_SETTINGS,
  useWorkerProcesses,
  workerEnvironment,
  type TestWorker,
} from '../helpers/worker-processes.js';

const SETTINGS = SHORT_LEASE_SETTINGS;
const WORKER_PROCESSES = 3;
const EVENTS = 60;
/** The event that fails every attempt (3 with the test retry schedule). */
const FAILING_EVENT = 20;
/** Events whose first attempt fails. */
const FAILS_FIRST = (n: number) => n % 9 === 4;
/** The event whose first request is slow, so that its worker is killed mid-request. */
const KILLED_EVENT = 12;

const workers = useWorkerProcesses();
const receivers: ScriptedReceiver[] = [];

afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.stop()));
});

function header(request: RecordedRequest, name: string): string {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function eventNumber(request: RecordedRequest): number {
  return (JSON.parse(request.body.toString('utf8')) as { data: { n: number } }).data.n;
}

/**
 * A loopback receiver that responds as `decide` returns and counts the
 * requests it has open at once.
 */
class CountingReceiver {
  inFlight = 0;
  maxInFlight = 0;
  readonly receiver: ScriptedReceiver;

  constructor(decide: (request: RecordedRequest, index: number) => { status: number; delayMs: number }) {
    this.receiver = new ScriptedReceiver((request, response, index) => {
      this.inFlight += 1;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      let open = true;
      const done = () => {
        if (!open) return;
        open = false;
        this.inFlight -= 1;
      };
      response.on('close', done);
      const { status, delayMs } = decide(request, index);
      setTimeout(() => {
        if (!response.destroyed) response.writeHead(status).end(String(status));
        done();
      }, delayMs);
    });
    receivers.push(this.receiver);
  }
}

async function createReceiverWith(
  fixture: SystemFixture,
  input: { name: string; endpoint: string; subscriptions: string[]; ordered?: boolean },
): Promise<CreatedReceiver> {
  const response = await fixture.system.request('POST', '/v1/receivers', input);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  expect(response.body.ordered).toBe(input.ordered ?? false);
  return response.body as CreatedReceiver;
}

/** Publishes events 0..count-1 of one class through the API, `parallel` at a time. */
async function publishNumbered(
  fixture: SystemFixture,
  eventClass: string,
  count: number,
  parallel = 10,
): Promise<void> {
  for (let start = 0; start < count; start += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, count - start) }, async (_, offset) => {
        const response = await fixture.system.request('POST', '/v1/events', {
          event_class: eventClass,
          data: { n: start + offset },
        });
        expect(response.status, JSON.stringify(response.body)).toBe(202);
      }),
    );
  }
}

function startWorkers(fixture: SystemFixture): Promise<TestWorker[]> {
  return Promise.all(
    Array.from({ length: WORKER_PROCESSES }, () =>
      workers.start('delivery', workerEnvironment(fixture.env, SETTINGS)),
    ),
  );
}

async function waitForAllFinished(fixture: SystemFixture, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const { rows } = await fixture.env.pool.query<{ pending: number }>(
        `SELECT count(*)::int AS pending FROM webhook_delivery WHERE time_completed IS NULL`,
      );
      return rows[0]!.pending === 0;
    },
    { timeoutMs, message: 'every delivery to finish' },
  );
}

/** Returns the ids of a receiver's events in event order: (time_created, id). */
async function eventOrder(fixture: SystemFixture, rxId: string): Promise<string[]> {
  const { rows } = await fixture.env.pool.query<{ id: string }>(
    `SELECT e.id::text FROM webhook_delivery d JOIN webhook_event e ON e.id = d.event_id
     WHERE d.rx_id = $1 ORDER BY e.time_created, e.id`,
    [rxId],
  );
  return rows.map((row) => row.id);
}

/** Removes repeats that follow each other: retries, and a resend after a crash. */
function collapseRepeats(values: readonly string[]): string[] {
  return values.filter((value, index) => index === 0 || values[index - 1] !== value);
}

async function stopAll(running: readonly TestWorker[]): Promise<void> {
  for (const worker of running) {
    const status = await worker.process.stop();
    expect(status.code, formatLines(worker.lines)).toBe(0);
  }
}

describe('ordered delivery across three processes', () => {
  const fixture = useSystem({ delivery: false, overrides: SETTINGS });

  test('one at a time in event order', async () => {
    const requestsByEvent = new Map<number, number>();
    let killTarget: string | undefined;
    const ordered = new CountingReceiver((request) => {
      const n = eventNumber(request);
      const seen = (requestsByEvent.get(n) ?? 0) + 1;
      requestsByEvent.set(n, seen);
      if (n === KILLED_EVENT && seen === 1) {
        killTarget = header(request, 'webhook-id');
        return { status: 200, delayMs: 3_000 };
      }
      if (n === FAILING_EVENT) return { status: 500, delayMs: 10 };
      if (FAILS_FIRST(n) && seen === 1) return { status: 500, delayMs: 10 };
      return { status: 200, delayMs: 20 };
    });
    const unordered = new CountingReceiver(() => ({ status: 200, delayMs: 100 }));
    await ordered.receiver.start();
    await unordered.receiver.start();
    const orderedRx = await createReceiverWith(fixture, {
      name: 'ordered-rx',
      endpoint: ordered.receiver.url(),
      subscriptions: ['ordering.tick'],
      ordered: true,
    });
    const unorderedRx = await createReceiverWith(fixture, {
      name: 'unordered-rx',
      endpoint: unordered.receiver.url(),
      subscriptions: ['ordering.tick'],
    });
    const started = await startWorkers(fixture);

    // Events are published ten at a time while the workers run, so that
    // dispatch creates deliveries out of event order.
    const publishing = publishNumbered(fixture, 'ordering.tick', EVENTS);

    // Kill the worker that is sending the slow request, mid-request.
    await waitFor(() => killTarget, { timeoutMs: 30_000, message: `the request of event ${KILLED_EVENT}` });
    const { rows } = await fixture.env.pool.query<{ deliverator_id: string | null }>(
      `SELECT deliverator_id FROM webhook_delivery WHERE id = $1`,
      [killTarget],
    );
    const holder = started.find((worker) =>
      String(rows[0]?.deliverator_id).includes(`:${worker.process.pid}:`),
    );
    expect(holder, `worker of ${rows[0]?.deliverator_id}`).toBeDefined();
    holder!.process.signal('SIGKILL');
    expect((await holder!.process.exited).signal).toBe('SIGKILL');
    await publishing;

    await waitForAllFinished(fixture, 90_000);

    const arrived = ordered.receiver.requests.map((request) => header(request, 'x-webhook-event-id'));
    expect(collapseRepeats(arrived), 'events in order of first arrival').toEqual(
      await eventOrder(fixture, orderedRx.id),
    );
    expect(ordered.maxInFlight, 'requests in flight at the ordered receiver').toBe(1);
    expect(unordered.maxInFlight, 'requests in flight at the unordered receiver').toBeGreaterThan(1);
    // Retries: three attempts of the failing event, two of those failing first.
    expect(requestsByEvent.get(FAILING_EVENT)).toBe(3);
    expect(requestsByEvent.get(4)).toBe(2);
    // The killed request was sent again after the lease expired.
    expect(requestsByEvent.get(KILLED_EVENT)).toBe(2);

    const { rows: states } = await fixture.env.pool.query<{ rx_id: string; state: string; count: number }>(
      `SELECT rx_id::text, state::text, count(*)::int AS count FROM webhook_delivery
       GROUP BY rx_id, state ORDER BY rx_id, state`,
    );
    const count = (rxId: string, state: string) =>
      states.find((row) => row.rx_id === rxId && row.state === state)?.count ?? 0;
    expect(count(orderedRx.id, 'delivered')).toBe(EVENTS - 1);
    expect(count(orderedRx.id, 'failed')).toBe(1);
    expect(count(unorderedRx.id, 'delivered')).toBe(EVENTS);
    await expectConsistentAttempts(fixture.env.pool);

    await stopAll(started.filter((worker) => worker !== holder));
  }, 150_000);
});

describe('ordered receiver deleted mid-queue', () => {
  const fixture = useSystem({ delivery: false, overrides: SETTINGS });

  test('pending deliveries end without requests', async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const receiver = new ScriptedReceiver((_request, response) => {
      void released.then(() => {
        if (!response.destroyed) response.writeHead(200).end('ok');
      });
    });
    receivers.push(receiver);
    await receiver.start();
    const rx = await createReceiverWith(fixture, {
      name: 'deleted-ordered-rx',
      endpoint: receiver.url(),
      subscriptions: ['ordering.deleted'],
      ordered: true,
    });
    await publishNumbered(fixture, 'ordering.deleted', 10);
    const started = await startWorkers(fixture);

    await waitFor(() => receiver.requests.length === 1, { message: 'the first request' });
    const deleted = await fixture.system.request('DELETE', `/v1/receivers/${rx.id}`);
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
    release();

    await waitForAllFinished(fixture, 30_000);
    expect(receiver.requests).toHaveLength(1);
    const { rows } = await fixture.env.pool.query<{ state: string; attempts: number; failure_reason: string | null }>(
      `SELECT state::text, attempts, failure_reason FROM webhook_delivery WHERE rx_id = $1
       ORDER BY state, failure_reason`,
      [rx.id],
    );
    expect(rows.filter((row) => row.state === 'delivered')).toHaveLength(1);
    const ended = rows.filter((row) => row.state === 'failed');
    expect(ended).toHaveLength(9);
    for (const row of ended) {
      expect(row).toEqual({ state: 'failed', attempts: 0, failure_reason: 'receiver deleted' });
    }
    await stopAll(started);
  }, 60_000);
});

// Receiver rate and in-flight limits across three delivery worker
// processes: a receiver limited to 20 requests per second, an unlimited
// receiver served at the same time, and receivers with max_in_flight.
import { Queue } from 'bullmq';
import { afterAll, describe, expect, test } from 'vitest';
import { deliveryQueueNames, queueKeyPrefix } from '../../shared/queues.js';
import { expectConsistentAttempts } from '../helpers/delivery-assertions.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import {
  useSystem,
  type CreatedReceiver,
  type SystemFixture,
} from '../helpers/system-fixture.js';
import type { RunningSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/test-env.js';
import {
  formatLines,
  SHORT_LEASE_SETTINGS,
  linesWithMessage,
  useWorkerProcesses,
  workerEnvironment,
  type TestWorker,
} from '../helpers/worker-processes.js';

const SETTINGS = SHORT_LEASE_SETTINGS;
const WORKER_PROCESSES = 3;

const RATE_LIMIT = 20;
const LIMITED_EVENTS = 200;
/**
 * Bounds of the time from the first to the last of the 200 requests. The
 * limiter admits them at least 50 ms apart, so 200 need at least 9.95 s,
 * and the lower bound leaves 0.5 s for the varying delay from admission to
 * arrival at both ends. On a 2-core machine at load averages of 1 to 8 the
 * 200 took 10.5 to 11.4 s, more than 10 s because BullMQ runs delayed jobs
 * late. While the other worker test files ran at the same time they took
 * 13.2 s. The upper bound leaves room for a more loaded machine and still
 * fails a limiter that admits less than half its rate.
 */
const MIN_SPAN_MS = 9_450;
const MAX_SPAN_MS = 20_000;

const workers = useWorkerProcesses();
const receivers: ScriptedReceiver[] = [];

afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.stop()));
});

/** A loopback receiver that counts the requests it has open at once. */
class ConcurrencyReceiver {
  inFlight = 0;
  maxInFlight = 0;
  readonly receiver: ScriptedReceiver;

  constructor(responseDelayMs: number) {
    this.receiver = new ScriptedReceiver((_request, response) => {
      this.inFlight += 1;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      let open = true;
      const done = () => {
        if (!open) return;
        open = false;
        this.inFlight -= 1;
      };
      response.on('close', done);
      setTimeout(() => {
        if (!response.destroyed) response.writeHead(200).end('ok');
        done();
      }, responseDelayMs);
    });
    receivers.push(this.receiver);
  }

  async start(): Promise<this> {
    await this.receiver.start();
    return this;
  }
}

async function createLimitedReceiver(
  system: RunningSystem,
  input: {
    name: string;
    endpoint: string;
    subscriptions: string[];
    rate_limit_per_second?: number;
    max_in_flight?: number;
  },
): Promise<CreatedReceiver> {
  const response = await system.request('POST', '/v1/receivers', input);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  expect(response.body.rate_limit_per_second).toBe(input.rate_limit_per_second ?? null);
  expect(response.body.max_in_flight).toBe(input.max_in_flight ?? null);
  return response.body as CreatedReceiver;
}

/** Publishes `count` events of one class through the API, 20 at a time. */
async function publishMany(system: RunningSystem, eventClass: string, count: number): Promise<void> {
  for (let start = 0; start < count; start += 20) {
    const size = Math.min(20, count - start);
    await Promise.all(
      Array.from({ length: size }, async (_, offset) => {
        const response = await system.request('POST', '/v1/events', {
          event_class: eventClass,
          data: { n: start + offset },
        });
        expect(response.status, JSON.stringify(response.body)).toBe(202);
      }),
    );
  }
}

/** Returns the largest number of times that fall in one window [t, t + windowMs). */
function maxInAnyWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let first = 0;
  for (let last = 0; last < sorted.length; last++) {
    while (sorted[last]! - sorted[first]! >= windowMs) first += 1;
    best = Math.max(best, last - first + 1);
  }
  return best;
}

/**
 * Returns, for every window [t, t + windowMs) that starts at an arrival,
 * how many arrivals fall in it and how much their delays from admission to
 * arrival differ (max minus min), in ms.
 */
function arrivalWindows(
  arrivals: readonly { arrivedAt: number; delayMs: number }[],
  windowMs: number,
): { count: number; delaySpreadMs: number }[] {
  const sorted = [...arrivals].sort((a, b) => a.arrivedAt - b.arrivedAt);
  return sorted.map((first, start) => {
    const inside = sorted.slice(start).filter((arrival) => arrival.arrivedAt - first.arrivedAt < windowMs);
    const delays = inside.map((arrival) => arrival.delayMs);
    return { count: inside.length, delaySpreadMs: Math.max(...delays) - Math.min(...delays) };
  });
}

/** Reads the Redis times at which the workers admitted requests to `rxId`, by delivery id. */
function admissionTimes(started: readonly TestWorker[], rxId: string): Map<string, number[]> {
  const times = new Map<string, number[]>();
  for (const worker of started) {
    for (const line of linesWithMessage(worker, 'receiver limits admitted the request')) {
      if (line.rxId !== rxId) continue;
      const deliveryId = String(line.deliveryId);
      times.set(deliveryId, [...(times.get(deliveryId) ?? []), Number(line.admittedAtMs)]);
    }
  }
  return times;
}

async function countDeliveries(fixture: SystemFixture, rxId: string) {
  const { rows } = await fixture.env.pool.query<{ state: string; count: number; attempts: number }>(
    `SELECT state::text, count(*)::int AS count, sum(attempts)::int AS attempts
     FROM webhook_delivery WHERE rx_id = $1 GROUP BY state`,
    [rxId],
  );
  return Object.fromEntries(rows.map((row) => [row.state, { count: row.count, attempts: row.attempts }]));
}

async function startWorkers(fixture: SystemFixture, count: number): Promise<TestWorker[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      // Debug logs carry the limiter's admission times.
      workers.start('delivery', workerEnvironment(fixture.env, { ...SETTINGS, LOG_LEVEL: 'debug' })),
    ),
  );
}

/** Reads the attemptsMade of every delayed delivery job. */
async function delayedJobAttempts(fixture: SystemFixture): Promise<number[]> {
  const config = fixture.system.config;
  const attemptsMade: number[] = [];
  for (const name of deliveryQueueNames(config.deliveryQueueShards)) {
    const queue = new Queue(name, {
      connection: { url: config.redisUrl },
      prefix: queueKeyPrefix(config, name),
    });
    try {
      for (const job of await queue.getDelayed()) attemptsMade.push(job.attemptsMade);
    } finally {
      await queue.close();
    }
  }
  return attemptsMade;
}

describe('receiver limits across three processes', () => {
  // Each block has its own database and queue prefix, so a failed test's
  // workers cannot take the next block's jobs.
  // A long attempt timeout, so that a loaded machine's slow responses are not
  // timeouts whose retries would add attempts to the counts checked below.
  const fixture = useSystem({
    delivery: false,
    overrides: { ...SETTINGS, ATTEMPT_TIMEOUT_MS: '8000', LEASE_TIMEOUT_MS: '20000' },
  });

  test('rate and in-flight limits hold', async () => {
    const { system } = fixture;
    const limited = await new ConcurrencyReceiver(5).start();
    const unlimited = await new ConcurrencyReceiver(5).start();
    const narrow = await new ConcurrencyReceiver(150).start();
    const limitedRx = await createLimitedReceiver(system, {
      name: 'limited-rx',
      endpoint: limited.receiver.url(),
      subscriptions: ['limits.limited'],
      rate_limit_per_second: RATE_LIMIT,
    });
    const unlimitedRx = await createLimitedReceiver(system, {
      name: 'unlimited-rx',
      endpoint: unlimited.receiver.url(),
      subscriptions: ['limits.unlimited'],
    });
    const narrowRx = await createLimitedReceiver(system, {
      name: 'narrow-rx',
      endpoint: narrow.receiver.url(),
      subscriptions: ['limits.narrow'],
      max_in_flight: 2,
    });
    // Every event is published and dispatched before the workers start, so
    // that this process, which also runs the receivers, is idle while they
    // record arrival times.
    await Promise.all([
      publishMany(system, 'limits.limited', LIMITED_EVENTS),
      publishMany(system, 'limits.unlimited', 200),
      publishMany(system, 'limits.narrow', 40),
    ]);
    await waitFor(
      async () => {
        const { rows } = await fixture.env.pool.query<{ count: number }>(
          `SELECT count(*)::int AS count FROM webhook_delivery`,
        );
        return rows[0]!.count === LIMITED_EVENTS + 240;
      },
      { timeoutMs: 30_000, message: 'every event to be dispatched' },
    );
    const started = await startWorkers(fixture, WORKER_PROCESSES);

    // The unlimited receiver gets all of its requests while the limited
    // one still has at least two seconds of its schedule ahead.
    await waitFor(() => unlimited.receiver.requests.length >= 200, {
      timeoutMs: 30_000,
      message: 'every request to the unlimited receiver',
    });
    const limitedWhenUnlimitedDone = limited.receiver.requests.length;
    expect(limitedWhenUnlimitedDone).toBeLessThanOrEqual(LIMITED_EVENTS - 2 * RATE_LIMIT);

    // Jobs that wait for the limiter sit in the delayed set without a used attempt.
    const delayed = await delayedJobAttempts(fixture);
    expect(delayed.length).toBeGreaterThan(0);
    expect(delayed.filter((made) => made !== 0)).toEqual([]);

    await waitFor(() => limited.receiver.requests.length >= LIMITED_EVENTS, {
      timeoutMs: 40_000,
      message: `${LIMITED_EVENTS} requests to the limited receiver`,
    });
    await waitFor(() => narrow.receiver.requests.length >= 40, {
      timeoutMs: 30_000,
      message: 'every request to the max_in_flight receiver',
    });
    await waitFor(
      async () => {
        const { rows } = await fixture.env.pool.query<{ pending: number }>(
          `SELECT count(*)::int AS pending FROM webhook_delivery WHERE time_completed IS NULL`,
        );
        return rows[0]!.pending === 0;
      },
      { timeoutMs: 20_000, message: 'every delivery to finish' },
    );

    // The limiter's own guarantee, on Redis's clock: admissions at least
    // 1000 / 20 ms apart, so at most 20 in any one-second window.
    const admitted = admissionTimes(started, limitedRx.id);
    const admittedTimes = [...admitted.values()].flat().sort((a, b) => a - b);
    expect(admittedTimes, 'admissions to the limited receiver').toHaveLength(LIMITED_EVENTS);
    const gaps = admittedTimes.slice(1).map((time, index) => time - admittedTimes[index]!);
    expect(Math.min(...gaps), 'shortest time between two admissions, ms').toBeGreaterThanOrEqual(1_000 / RATE_LIMIT);
    expect(maxInAnyWindow(admittedTimes, 1_000), 'admissions in any one-second window').toBeLessThanOrEqual(RATE_LIMIT);

    // At the receiver: every request was admitted, and at most 21 arrive in
    // any one second. Admissions 50 ms apart put at most 1 + (1000 + d) / 50
    // arrivals into one second when their delays from admission to arrival
    // differ by up to d ms. d exceeds 50 ms when a process is not scheduled
    // for a while on a loaded machine, so each full 50 ms of it allows one
    // more. Both clocks count whole ms, hence 2 ms of tolerance.
    const intervalMs = 1_000 / RATE_LIMIT;
    const arrivals = limited.receiver.requests.map((request) => {
      const deliveryId = String(request.headers['webhook-id']);
      const admittedAt = admitted.get(deliveryId);
      expect(admittedAt, `admission of delivery ${deliveryId}`).toBeDefined();
      return { arrivedAt: request.arrivedAt, delayMs: request.arrivedAt - admittedAt![0]! };
    });
    const windows = arrivalWindows(arrivals, 1_000);
    for (const window of windows) {
      const allowed = RATE_LIMIT + 1 + Math.floor((window.delaySpreadMs + 2) / intervalMs);
      expect(window.count, `arrivals in one second, delays differing by ${window.delaySpreadMs} ms`).toBeLessThanOrEqual(allowed);
    }
    const maxPerSecond = Math.max(...windows.map((window) => window.count));
    const arrivalTimes = arrivals.map((arrival) => arrival.arrivedAt);
    const spanMs = Math.max(...arrivalTimes) - Math.min(...arrivalTimes);
    console.log(
      `rate limit ${RATE_LIMIT}/s: ${arrivals.length} requests in ${spanMs} ms, ` +
        `at most ${maxPerSecond} arrivals in any one-second window ` +
        `(${windows.filter((window) => window.count > RATE_LIMIT + 1).length} windows above ${RATE_LIMIT + 1}); ` +
        `${limitedWhenUnlimitedDone} had arrived when the unlimited receiver had all 200`,
    );
    expect(spanMs, 'time from the first to the last request').toBeGreaterThanOrEqual(MIN_SPAN_MS);
    expect(spanMs, 'time from the first to the last request').toBeLessThanOrEqual(MAX_SPAN_MS);
    expect(limited.receiver.requests).toHaveLength(LIMITED_EVENTS);

    expect(narrow.maxInFlight, 'requests in flight at the max_in_flight receiver').toBe(2);
    // The unlimited receiver was served with full concurrency.
    expect(unlimited.maxInFlight).toBeGreaterThan(2);

    // Delays wrote no attempt rows: every delivery took exactly one attempt.
    expect(await countDeliveries(fixture, limitedRx.id)).toEqual({
      delivered: { count: LIMITED_EVENTS, attempts: LIMITED_EVENTS },
    });
    expect(await countDeliveries(fixture, unlimitedRx.id)).toEqual({
      delivered: { count: 200, attempts: 200 },
    });
    expect(await countDeliveries(fixture, narrowRx.id)).toEqual({
      delivered: { count: 40, attempts: 40 },
    });
    await expectConsistentAttempts(fixture.env.pool);

    for (const worker of started) {
      const status = await worker.process.stop();
      expect(status.code, formatLines(worker.lines)).toBe(0);
    }
  }, 120_000);
});

describe('in-flight slot of a killed worker', () => {
  const fixture = useSystem({ delivery: false, overrides: SETTINGS });

  test('slot expires after SIGKILL', async () => {
    const { system } = fixture;
    const hanging = await new ConcurrencyReceiver(1_500).start();
    const rx = await createLimitedReceiver(system, {
      name: 'single-slot-rx',
      endpoint: hanging.receiver.url(),
      subscriptions: ['limits.single'],
      max_in_flight: 1,
    });
    const started = await startWorkers(fixture, WORKER_PROCESSES);
    await publishMany(system, 'limits.single', 6);
    await waitFor(() => hanging.receiver.requests.length >= 1, {
      message: 'the first request to the single-slot receiver',
    });

    // Kill the process that has taken the receiver's only slot, mid-request.
    const sentId = hanging.receiver.requests[0]!.headers['webhook-id'];
    const { rows } = await fixture.env.pool.query<{ deliverator_id: string }>(
      `SELECT deliverator_id FROM webhook_delivery WHERE id = $1 AND deliverator_id IS NOT NULL`,
      [sentId],
    );
    expect(rows, `lease of delivery ${String(sentId)}`).toHaveLength(1);
    const holder = started.find((worker) =>
      rows[0]!.deliverator_id.includes(`:${worker.process.pid}:`),
    );
    expect(holder, `worker of ${rows[0]!.deliverator_id}`).toBeDefined();
    holder!.process.signal('SIGKILL');
    expect((await holder!.process.exited).signal).toBe('SIGKILL');

    // The slot expires ATTEMPT_TIMEOUT_MS + 5 s after it was taken, and
    // then every delivery goes through, one at a time.
    await waitFor(
      async () => (await countDeliveries(fixture, rx.id)).delivered?.count === 6,
      { timeoutMs: 45_000, message: 'every delivery to the single-slot receiver' },
    );
    expect(hanging.maxInFlight, 'requests in flight at the single-slot receiver').toBe(1);
    await expectConsistentAttempts(fixture.env.pool);

    for (const worker of started.filter((candidate) => candidate !== holder)) {
      const status = await worker.process.stop();
      expect(status.code, formatLines(worker.lines)).toBe(0);
    }
  }, 90_000);
});

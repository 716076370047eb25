import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { adminUrl } from '../helpers/database-names.js';
import { databaseName } from '../helpers/pg-activity.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { RoleProcess, roleEnvironment } from '../helpers/role-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

// The harness keeps UTC. Node applies a change of process.env.TZ at once,
// and vitest's forks pool runs each test file in a process of its own, so
// this does not reach other files. The roles run as processes of their own
// with the zone of each run below.
process.env.TZ = 'UTC';

const RETRY_MS = 1_000;
const SWEEP_INTERVAL_MS = 2_000;
const SWEEP_GRACE_MS = 6_000;

/** Runs with PostgreSQL's session zone and the roles' TZ; the second is the UTC baseline. */
const RUNS = [
  // A positive half-hour offset for the roles, so that sign errors and
  // 30-minute errors both show, and a negative one for the database.
  { name: 'new york database, kolkata roles', databaseZone: 'America/New_York', processZone: 'Asia/Kolkata' },
  { name: 'utc database, utc roles', databaseZone: 'UTC', processZone: 'UTC' },
];

/** An ISO 8601 instant with Z or an explicit offset. */
const INSTANT_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

describe.each(RUNS)('time zones: $name', ({ databaseZone, processZone }) => {
  let env: TestEnv;
  let harness: ReceiverHarness;
  const roles: RoleProcess[] = [];
  let apiUrl = '';

  beforeAll(async () => {
    env = await createTestEnv();
    // Before any process connects, so that every session starts in this zone.
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      await admin.query(
        `ALTER DATABASE "${databaseName(env.databaseUrl)}" SET timezone TO '${databaseZone}'`,
      );
    } finally {
      await admin.end();
    }
    harness = await new ReceiverHarness((_request, index) => ({ status: index === 0 ? 500 : 200 })).start();
    const environment = roleEnvironment(env, {
      TZ: processZone,
      RETRY_SCHEDULE_MS: String(RETRY_MS),
      SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL_MS),
      SWEEP_GRACE_MS: String(SWEEP_GRACE_MS),
    });
    for (const role of ['api', 'dispatch', 'delivery'] as const) {
      roles.push(new RoleProcess(role, environment));
    }
    const [apiStarted] = await Promise.all(roles.map((role) => role.started()));
    apiUrl = String(apiStarted!.url);
  });

  afterAll(async () => {
    await Promise.all(roles.map((role) => role.stop()));
    await harness?.stop();
    await env?.dispose();
  });

  async function request(method: string, path: string, body?: unknown) {
    const response = await fetch(`${apiUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as any };
  }

  /** Reads a timestamp column as epoch milliseconds, the way psql's extract(epoch) shows it. */
  async function epochMs(table: string, column: string, where: string, values: unknown[]) {
    const { rows } = await env.pool.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM ${column}) * 1000)::float8 AS ms FROM ${table} WHERE ${where}`,
      values,
    );
    expect(rows, `one ${table} row for ${where}`).toHaveLength(1);
    return rows[0]!.ms;
  }

  /** Checks that an API timestamp is an instant with a zone and equals the column. */
  async function expectSameInstant(label: string, apiValue: unknown, column: Promise<number | null>) {
    expect(apiValue, `${label} carries Z or an offset`).toMatch(INSTANT_PATTERN);
    const stored = await column;
    expect(stored, `${label} in PostgreSQL`).not.toBeNull();
    // PostgreSQL keeps microseconds and a JavaScript Date milliseconds.
    expect(Date.parse(String(apiValue)), `${label}: API value against extract(epoch)`).toBe(
      Math.floor(stored!),
    );
  }

  test('API timestamps equal stored instants', async () => {
    const receiverCreatedAt = Date.now();
    const created = await request('POST', '/v1/receivers', {
      name: 'tz-rx',
      endpoint: harness.url(),
      subscriptions: ['test.*'],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const rxId = created.body.id as string;
    await expectSameInstant(
      'receiver time_created',
      created.body.time_created,
      epochMs('webhook_rx', 'time_created', 'id = $1', [rxId]),
    );
    expect(Math.abs(Date.parse(created.body.time_created) - receiverCreatedAt)).toBeLessThan(2_000);

    const t0 = Date.now();
    const published = await request('POST', '/v1/events', { event_class: 'test.tz', data: { n: 1 } });
    expect(published.status, JSON.stringify(published.body)).toBe(202);
    const eventId = published.body.id as string;
    await expectSameInstant(
      'publish response time_created',
      published.body.time_created,
      epochMs('webhook_event', 'time_created', 'id = $1', [eventId]),
    );
    expect(Math.abs(Date.parse(published.body.time_created) - t0), 'event time_created against T0').toBeLessThan(2_000);

    const delivery = await waitFor(
      async () => {
        const response = await request('GET', `/v1/events/${eventId}/deliveries`);
        const first = response.body.deliveries?.[0];
        return first?.state === 'delivered' ? first : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100, message: `the delivery of event ${eventId}` },
    );
    const event = (await request('GET', `/v1/events/${eventId}`)).body;
    await expectSameInstant('event time_created', event.time_created, epochMs('webhook_event', 'time_created', 'id = $1', [eventId]));
    await expectSameInstant('event time_dispatched', event.time_dispatched, epochMs('webhook_event', 'time_dispatched', 'id = $1', [eventId]));
    await expectSameInstant('delivery time_created', delivery.time_created, epochMs('webhook_delivery', 'time_created', 'id = $1', [delivery.id]));
    await expectSameInstant('delivery time_completed', delivery.time_completed, epochMs('webhook_delivery', 'time_completed', 'id = $1', [delivery.id]));

    const attempts = delivery.attempt_log as { attempt: number; result: string; response_status: number; time_created: string }[];
    expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual([
      [1, 'failed_http_error', 500],
      [2, 'succeeded', 200],
    ]);
    const attemptMs: number[] = [];
    for (const attempt of attempts) {
      const stored = epochMs('webhook_delivery_attempt', 'time_created', 'delivery_id = $1 AND attempt = $2', [delivery.id, attempt.attempt]);
      await expectSameInstant(`attempt ${attempt.attempt} time_created`, attempt.time_created, stored);
      attemptMs.push((await stored)!);
    }

    // The retry came after the schedule's 1 s, not hours away.
    const attemptGap = attemptMs[1]! - attemptMs[0]!;
    expect(attemptGap, 'attempt 2 time_created minus attempt 1').toBeGreaterThanOrEqual(0.8 * RETRY_MS);
    expect(attemptGap, 'attempt 2 time_created minus attempt 1').toBeLessThanOrEqual(1.5 * RETRY_MS);
    expect(harness.requests).toHaveLength(2);
    const postGap = harness.requests[1]!.arrivedAt - harness.requests[0]!.arrivedAt;
    expect(postGap, 'POST 2 arrival minus POST 1 arrival').toBeGreaterThanOrEqual(0.8 * RETRY_MS);
    expect(postGap, 'POST 2 arrival minus POST 1 arrival').toBeLessThanOrEqual(1.4 * RETRY_MS);

    // The body carries the event's time as the same instant.
    for (const received of harness.requests) {
      const body = JSON.parse(received.body.toString('utf8')) as { timestamp: string };
      expect(body.timestamp).toMatch(INSTANT_PATTERN);
      expect(Date.parse(body.timestamp), 'body timestamp against time_created').toBe(Date.parse(event.time_created));
      const headerSeconds = Number(received.headers['webhook-timestamp']);
      expect(Math.abs(headerSeconds * 1000 - received.arrivedAt), 'webhook-timestamp against arrival').toBeLessThan(2_000);
    }
  });

  test('sweeper ages events correctly', async () => {
    // Events whose producer crashed before enqueueing them: one 30 s old,
    // one just made. Their class has no receiver, so nothing is sent.
    const old = randomUUID();
    const young = randomUUID();
    const insertedAt = Date.now();
    await env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
       VALUES ($1, 'sweep.tz', '{}', now() - interval '30 seconds', now()),
              ($2, 'sweep.tz', '{}', now(), now())`,
      [old, young],
    );
    const dispatchedAt = async (id: string) => {
      const { rows } = await env.pool.query<{ ms: number | null }>(
        `SELECT (extract(epoch FROM time_dispatched) * 1000)::float8 AS ms FROM webhook_event WHERE id = $1`,
        [id],
      );
      return rows[0]?.ms ?? null;
    };

    // Past the grace period, so the next sweep dispatches it.
    await waitFor(async () => (await dispatchedAt(old)) !== null, {
      timeoutMs: SWEEP_INTERVAL_MS + 5_000,
      intervalMs: 100,
      message: 'the 30 s old event to be dispatched by the sweeper',
    });
    // Within the grace period: a sweeper that read the zone wrong would
    // think it hours old (or in the future) and dispatch it now (or never).
    const checkedAt = Date.now();
    expect(checkedAt - insertedAt, 'time left to check the young event').toBeLessThan(SWEEP_GRACE_MS - 1_000);
    expect(await dispatchedAt(young), 'young event dispatched within its grace period').toBeNull();
    await waitFor(async () => (await dispatchedAt(young)) !== null, {
      timeoutMs: SWEEP_GRACE_MS + SWEEP_INTERVAL_MS + 5_000,
      intervalMs: 100,
      message: 'the young event to be dispatched once its grace period passed',
    });
    const youngDispatched = (await dispatchedAt(young))!;
    expect(youngDispatched - insertedAt, 'young event dispatched after its grace period').toBeGreaterThanOrEqual(
      SWEEP_GRACE_MS - 500,
    );
  });
});

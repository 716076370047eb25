import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { processMetrics } from '../../shared/ops/metrics.js';
import { openQueues, withTimeout, workerConnection } from '../../shared/queues.js';
import { generateSecret } from '../../shared/signing.js';
import { DeliveryStore } from '../../workers/delivery/delivery-store.js';
import { dispatchEvent } from '../../workers/dispatch/dispatch-event.js';
import { startDispatchWorker } from '../../workers/dispatch/dispatch-worker.js';
import {
  deleteExpiredRows,
  startRetention,
  type RetentionCounts,
} from '../../workers/dispatch/retention.js';
import { captureLogs } from '../helpers/log-capture.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const DAY_MS = 86_400_000;
const MAX_AGE_MS = 30 * DAY_MS;
/** Maximum wait for a statement that must not block, after which the test reports it blocked. */
const BLOCKED_AFTER_MS = 10_000;

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv();
});

afterAll(async () => {
  await env?.dispose();
});

beforeEach(async () => {
  await env.pool.query(
    'TRUNCATE webhook_delivery_attempt, webhook_delivery, webhook_event, webhook_secret, webhook_rx_subscription, webhook_rx CASCADE',
  );
});

async function insertReceiver(): Promise<string> {
  const rxId = randomUUID();
  await env.pool.query(
    `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
     VALUES ($1, $2, 'http://127.0.0.1:9/hook', now(), now())`,
    [rxId, `rx-${rxId.slice(0, 8)}`],
  );
  await env.pool.query(
    `INSERT INTO webhook_secret (id, rx_id, secret, time_created, time_modified)
     VALUES (gen_random_uuid(), $1, $2, now(), now())`,
    [rxId, generateSecret()],
  );
  await env.pool.query(
    `INSERT INTO webhook_rx_subscription (rx_id, event_class, time_created)
     VALUES ($1, 'retention.ping', now())`,
    [rxId],
  );
  return rxId;
}

/**
 * Inserts `count` dispatched events created `ageDays` ago, each with one
 * delivery to `rxId` in `state` and `attemptsEach` attempt rows, and
 * returns the delivery ids.
 */
async function insertDeliveries(
  rxId: string,
  count: number,
  ageDays: number,
  state: 'delivered' | 'failed' | 'pending',
  attemptsEach: number,
): Promise<string[]> {
  const { rows } = await env.pool.query<{ id: string }>(
    `WITH events AS (
       INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
       SELECT gen_random_uuid(), 'retention.ping', '{"n":1}',
         now() - make_interval(days => $3) - make_interval(secs => g), now(), now(), 1
       FROM generate_series(1, $2) AS g
       RETURNING id, time_created
     )
     INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
     SELECT gen_random_uuid(), events.id, $1, 'event', $4::webhook_delivery_state, $5, events.time_created,
       CASE WHEN $4 = 'pending' THEN NULL ELSE events.time_created + interval '1 minute' END
     FROM events
     RETURNING id::text`,
    [rxId, count, ageDays, state, attemptsEach],
  );
  const ids = rows.map((row) => row.id);
  await env.pool.query(
    `INSERT INTO webhook_delivery_attempt (id, delivery_id, attempt, rx_id, result, response_status,
       response_duration, time_created, deliverator_id)
     SELECT gen_random_uuid(), d.id, g, d.rx_id, 'failed_http_error', 500, 3, d.time_created, 'fixture'
     FROM webhook_delivery d CROSS JOIN generate_series(1, $2) AS g
     WHERE d.id = ANY($1::uuid[])`,
    [ids, attemptsEach],
  );
  return ids;
}

/** Inserts `count` events created `ageDays` ago without deliveries, dispatched or not. */
async function insertBareEvents(count: number, ageDays: number, dispatched: boolean): Promise<string[]> {
  const { rows } = await env.pool.query<{ id: string }>(
    `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
     SELECT gen_random_uuid(), 'retention.none', '{}', now() - make_interval(days => $2),
       now(), CASE WHEN $3 THEN now() END, 0
     FROM generate_series(1, $1)
     RETURNING id::text`,
    [count, ageDays, dispatched],
  );
  return rows.map((row) => row.id);
}

async function tableCounts() {
  const { rows } = await env.pool.query<{ events: number; deliveries: number; attempts: number }>(
    `SELECT (SELECT count(*)::int FROM webhook_event) AS events,
            (SELECT count(*)::int FROM webhook_delivery) AS deliveries,
            (SELECT count(*)::int FROM webhook_delivery_attempt) AS attempts`,
  );
  return rows[0]!;
}

async function existing(table: 'webhook_event' | 'webhook_delivery', ids: string[]): Promise<number> {
  const { rows } = await env.pool.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM ${table} WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  return rows[0]!.count;
}

describe('deleteExpiredRows', () => {
  test('deletes old finished rows in batches', async () => {
    const rxId = await insertReceiver();
    const oldDelivered = await insertDeliveries(rxId, 50, 40, 'delivered', 2);
    const oldFailed = await insertDeliveries(rxId, 45, 40, 'failed', 2);
    const oldPending = await insertDeliveries(rxId, 1, 40, 'pending', 1);
    const recent = await insertDeliveries(rxId, 5, 1, 'delivered', 2);
    const oldUndispatched = await insertBareEvents(1, 40, false);
    const oldWithoutDeliveries = await insertBareEvents(3, 40, true);
    const recentWithoutDeliveries = await insertBareEvents(2, 29, true);
    const before = await tableCounts();

    const batches: RetentionCounts[] = [];
    const result = await deleteExpiredRows({
      pool: env.pool,
      maxAgeMs: MAX_AGE_MS,
      batchSize: 10,
      pauseMs: 0,
      onDeleted: (counts) => batches.push(counts),
    });

    expect(result).toEqual({
      deliveries: 95,
      attempts: 190,
      events: 98,
      deliveryStatements: 10,
      eventStatements: 10,
    });
    expect(batches).toHaveLength(20);
    for (const batch of batches) {
      expect(batch.deliveries).toBeLessThanOrEqual(10);
      expect(batch.events).toBeLessThanOrEqual(10);
      expect(batch.attempts).toBe(batch.deliveries * 2);
    }
    expect(await tableCounts()).toEqual({
      events: before.events - 98,
      deliveries: before.deliveries - 95,
      attempts: before.attempts - 190,
    });
    expect(await existing('webhook_delivery', [...oldDelivered, ...oldFailed])).toBe(0);
    expect(await existing('webhook_delivery', oldPending)).toBe(1);
    expect(await existing('webhook_delivery', recent)).toBe(5);
    expect(await existing('webhook_event', oldUndispatched)).toBe(1);
    expect(await existing('webhook_event', oldWithoutDeliveries)).toBe(0);
    expect(await existing('webhook_event', recentWithoutDeliveries)).toBe(2);
    const { rows: pendingEvent } = await env.pool.query(
      'SELECT 1 FROM webhook_event e JOIN webhook_delivery d ON d.event_id = e.id WHERE d.id = $1',
      [oldPending[0]],
    );
    expect(pendingEvent, 'the event of a pending delivery').toHaveLength(1);

    const again = await deleteExpiredRows({ pool: env.pool, maxAgeMs: MAX_AGE_MS, batchSize: 10, pauseMs: 0 });
    expect(again).toEqual({ deliveries: 0, attempts: 0, events: 0, deliveryStatements: 1, eventStatements: 1 });
  });

  test('stops between batches when asked', async () => {
    const rxId = await insertReceiver();
    await insertDeliveries(rxId, 30, 40, 'delivered', 1);
    let statements = 0;
    const result = await deleteExpiredRows(
      {
        pool: env.pool,
        maxAgeMs: MAX_AGE_MS,
        batchSize: 10,
        pauseMs: 0,
        onDeleted: () => (statements += 1),
      },
      () => statements >= 1,
    );
    expect(result.deliveryStatements).toBe(1);
    expect(result.deliveries).toBe(10);
    expect(result.eventStatements).toBe(0);
    expect((await tableCounts()).deliveries).toBe(20);
  });

  test('workers are not blocked by a batch', async () => {
    const config = env.config();
    const rxId = await insertReceiver();
    const old = await insertDeliveries(rxId, 25, 40, 'delivered', 1);
    const [pendingId] = await insertDeliveries(rxId, 1, 0, 'pending', 0);
    const newEventId = randomUUID();
    await env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
       VALUES ($1, 'retention.ping', '{}', now(), now())`,
      [newEventId],
    );
    const connection = workerConnection(config);
    const queues = openQueues(connection, config);
    const store = new DeliveryStore(env.pool, 'retention-neighbour', config.leaseTimeoutMs);
    const silent = createLogger('test', 'silent');

    // Runs every statement of the first delivery batch and of the first
    // event batch inside a transaction that stays open while the worker's
    // statements run, so that each batch holds its row locks meanwhile.
    const observed: string[] = [];
    let heldDeliveries = false;
    let heldEvents = false;
    const whileHeld = async (label: string) => {
      if (label === 'deliveries') {
        const claim = await withTimeout(store.claim(pendingId!), BLOCKED_AFTER_MS, 'claim of a pending delivery');
        observed.push(`claim pending: ${claim.kind}`);
        if (claim.kind === 'claimed') {
          const written = await withTimeout(
            store.recordAttempt(
              claim.delivery,
              { result: 'succeeded', responseStatus: 200, responseDurationMs: 1, responseBody: '', unreachableReason: null },
              'delivered',
            ),
            BLOCKED_AFTER_MS,
            'attempt write',
          );
          observed.push(`record: ${written}`);
        }
        const stale = await withTimeout(store.claim(old[0]!), BLOCKED_AFTER_MS, 'claim of a delivery being deleted');
        observed.push(`claim deleted: ${stale.kind}`);
      } else {
        const dispatched = await withTimeout(
          dispatchEvent({ pool: env.pool, deliveryQueues: queues.delivery, logger: silent }, newEventId),
          BLOCKED_AFTER_MS,
          'dispatch of a new event',
        );
        observed.push(`dispatch: ${dispatched.kind}`);
      }
    };
    const holdingPool = {
      query: async (sql: string, values: unknown[]) => {
        if (heldDeliveries) return env.pool.query(sql, values);
        heldDeliveries = true;
        const client = await env.pool.connect();
        try {
          await client.query('BEGIN');
          const result = await client.query(sql, values);
          expect(result.rows[0].deliveries).toBe(10);
          await whileHeld('deliveries');
          await client.query('COMMIT');
          return result;
        } finally {
          client.release();
        }
      },
      connect: async () => {
        const client = await env.pool.connect();
        if (heldEvents) return client;
        heldEvents = true;
        const query = client.query.bind(client) as (sql: string, values?: unknown[]) => Promise<pg.QueryResult>;
        return Object.assign(Object.create(client) as pg.PoolClient, {
          query: async (sql: string, values?: unknown[]) => {
            const result = await query(sql, values);
            if (sql.includes('DELETE FROM webhook_event')) await whileHeld('events');
            return result;
          },
          release: () => client.release(),
        });
      },
    } as unknown as pg.Pool;

    try {
      const result = await deleteExpiredRows({
        pool: holdingPool,
        maxAgeMs: MAX_AGE_MS,
        batchSize: 10,
        pauseMs: 0,
      });
      expect(observed).toEqual([
        'claim pending: claimed',
        'record: true',
        'claim deleted: finished',
        'dispatch: dispatched',
      ]);
      expect(result.deliveries).toBe(25);
      expect(result.events).toBe(25);
    } finally {
      await queues.dispatch.close();
      await queues.delivery.close();
      connection.disconnect();
    }
    const { rows } = await env.pool.query(
      'SELECT state::text FROM webhook_delivery WHERE id = $1',
      [pendingId],
    );
    expect(rows[0].state).toBe('delivered');
    expect(await existing('webhook_event', [newEventId])).toBe(1);
  });
});

describe('scheduled retention', () => {
  test('RETENTION_DAYS=0 starts nothing', () => {
    const config = loadConfig({ RETENTION_DAYS: '0' });
    const job = startRetention(config, {
      pool: env.pool,
      dispatchQueue: undefined as never,
      logger: createLogger('test', 'silent'),
    });
    expect(job).toBeUndefined();
  });

  test('one dispatch process runs per period', async () => {
    const rxId = await insertReceiver();
    await insertDeliveries(rxId, 40, 40, 'delivered', 3);
    await insertDeliveries(rxId, 3, 2, 'delivered', 1);
    const metricBefore = await retentionMetric();
    const config = env.config({ RETENTION_INTERVAL_MS: '1000', RETENTION_BATCH_SIZE: '7' });
    const logs = captureLogs('info');
    const workers = [startDispatchWorker(config, logs.logger), startDispatchWorker(config, logs.logger)];
    const startedAt = Date.now();
    try {
      await waitFor(async () => (await tableCounts()).deliveries === 3, {
        message: 'the retention job to delete the old deliveries',
      });
      // Three more periods, in which the timers of both processes fire.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
    } finally {
      await Promise.all(workers.map((worker) => worker.close()));
    }
    const runs = logs.records.filter((record) => record.msg === 'retention run finished');
    expect(runs.length).toBeGreaterThanOrEqual(1);
    // Both processes' timers fire every 1000 ms. The period marker lives
    // 900 ms, so runs start at least that far apart in Redis's time. The
    // start times are taken after the lock's round trip, whose duration
    // varies under load, so the check allows 200 ms less. Without the lock,
    // the two processes would start runs a few ms apart.
    const starts = runs.map((run) => Date.parse(String(run.startedAt))).sort((a, b) => a - b);
    for (let index = 1; index < starts.length; index++) {
      expect(starts[index]! - starts[index - 1]!, `gap before run ${index + 1}`).toBeGreaterThanOrEqual(700);
    }
    expect(runs.length, 'more runs than periods').toBeLessThanOrEqual(
      Math.ceil((Date.now() - startedAt) / 900) + 1,
    );
    const first = runs[0]!;
    expect(first).toMatchObject({ deliveries: 40, attempts: 120, events: 40, deliveryStatements: 6 });
    expect(await tableCounts()).toEqual({ events: 3, deliveries: 3, attempts: 3 });

    const metricAfter = await retentionMetric();
    expect(metricAfter.webhook_delivery - metricBefore.webhook_delivery).toBe(40);
    expect(metricAfter.webhook_delivery_attempt - metricBefore.webhook_delivery_attempt).toBe(120);
    expect(metricAfter.webhook_event - metricBefore.webhook_event).toBe(40);
  });
});

type RetentionTable = 'webhook_event' | 'webhook_delivery' | 'webhook_delivery_attempt';

/** Reads webhook_retention_deleted_total per table from this process's metrics. */
async function retentionMetric(): Promise<Record<RetentionTable, number>> {
  const values = { webhook_event: 0, webhook_delivery: 0, webhook_delivery_attempt: 0 };
  for (const sample of (await processMetrics().retentionDeleted.get()).values) {
    const table = String(sample.labels.table);
    if (table in values) values[table as RetentionTable] = sample.value;
  }
  return values;
}

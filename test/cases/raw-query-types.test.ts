import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { IdempotencyKeys } from '../../producers/api/idempotency.js';
import { listDeliveries, decodeCursor } from '../../producers/deliveries-query.js';
import { Publisher } from '../../producers/publish.js';
import { ProbeTimeoutError, RedeliveryService } from '../../producers/redeliver.js';
import { runCli } from '../../producers/cli/run-cli.js';
import { readProgress, readResults } from '../../scripts/demo/report.js';
import { migrateDatabase } from '../../shared/db/migrate.js';
import { createLogger } from '../../shared/logger.js';
import { readOldestUndispatchedAgeSeconds } from '../../shared/ops/stats-refresher.js';
import { generateSecret } from '../../shared/signing.js';
import { DeliveryStore } from '../../workers/delivery/delivery-store.js';
import { OrderedDelivery } from '../../workers/delivery/ordering.js';
import { dispatchEvent } from '../../workers/dispatch/dispatch-event.js';
import { readOrderedHeads } from '../../workers/dispatch/ordered-heads.js';
import { deleteExpiredRows } from '../../workers/dispatch/retention.js';
import { runResendPage } from '../../workers/dispatch/resend-batch.js';
import { ResendSweeper } from '../../workers/dispatch/resend-sweeper.js';
import { Sweeper } from '../../workers/dispatch/sweeper.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

// Every raw SQL statement of the services runs here against fixture rows,
// through the function that wraps it, and the JavaScript type of every
// column that reaches a caller is checked. node-postgres and Prisma's pg
// adapter map some PostgreSQL types differently (bigint, numeric, enum
// arrays, interval, json), and the type parameter of a raw query hides a
// change from the compiler, so an upgrade that changes a mapping fails here.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Raw query call sites of the services per file, as the grep below counts
 * them. A new call site needs a type check in this file before it is added
 * here.
 */
const RAW_QUERY_SITES: Record<string, number> = {
  'producers/api/idempotency.ts': 1, // IdempotencyKeys.run: claiming a key
  'producers/deliveries-query.ts': 1, // listDeliveries
  'producers/publish.ts': 2, // publishEvent
  'producers/redeliver.ts': 3, // RedeliveryService: resends, bulk resend rows, probes
  'producers/receivers.ts': 2, // row locks in update and deleteSecret, results unused
  'shared/db/client.ts': 1, // SET TIME ZONE on connect, result unused
  'shared/db/migrate.ts': 9, // migrateDatabase
  'shared/db/schema-check.ts': 2, // checkSchemaReady, typed by test/shared/schema-check.test.ts
  'shared/ops/health-check.ts': 1, // HealthCheck: SELECT 1, result unused
  'shared/ops/stats-refresher.ts': 1, // readOldestUndispatchedAgeSeconds
  'workers/delivery/delivery-store.ts': 5, // DeliveryStore
  'workers/delivery/ordering.ts': 7, // OrderedDelivery.claim in a transaction, and wakeHead
  'workers/dispatch/dispatch-event.ts': 2, // dispatchEvent
  'workers/dispatch/sweeper.ts': 2, // Sweeper.sweepOnce and its cursor
  'workers/dispatch/resend-batch.ts': 7, // runResendPage and its transaction
  'workers/dispatch/resend-sweeper.ts': 1, // ResendSweeper.sweepOnce
  'workers/dispatch/ordered-heads.ts': 1, // readOrderedHeads, for the sweeper
  'workers/dispatch/retention.ts': 6, // deleteExpiredRows and its event transaction
};

const RAW_QUERY_PATTERN = /\$queryRaw(?:Unsafe)?|\$executeRaw(?:Unsafe)?|\.query\s*[<(]/g;

/** Names the JavaScript type of a value the way the checks below expect it. */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) {
    const elements = [...new Set(value.map(typeName))].sort();
    return `array<${elements.join('|')}>`;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'invalid date' : 'date';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    return 'iso-string';
  }
  if (typeof value === 'object') return 'object';
  return typeof value;
}

/** Maps every field of an object to its type name. */
function typesOf(record: object): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, typeName(value)]));
}

async function listSourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, directory), { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)))
    .filter((file) => !file.split(path.sep).includes('generated'));
}

/** Counts raw query call sites per file, ignoring comment lines. */
async function countRawQuerySites(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const directory of ['shared', 'producers', 'workers']) {
    for (const file of await listSourceFiles(directory)) {
      const text = await readFile(path.join(ROOT, file), 'utf8');
      const code = text
        .split('\n')
        .filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line))
        .join('\n');
      const found = code.match(RAW_QUERY_PATTERN)?.length ?? 0;
      if (found > 0) counts[file.split(path.sep).join('/')] = found;
    }
  }
  return counts;
}

let env: TestEnv;
let system: RunningSystem;
const ids = {
  r1: randomUUID(),
  r2: randomUUID(),
  event: randomUUID(),
  delivery: randomUUID(),
  pendingEvent: randomUUID(),
  pendingDelivery: randomUUID(),
};
const EVENT_DATA = { nested: { k: [1, 2] }, s: 'x' };
const silent = createLogger('test', 'silent');

beforeAll(async () => {
  env = await createTestEnv();
  // The sweeper's timer is set to an hour, so that only sweepOnce() runs it.
  system = await startSystem(env, {
    delivery: false,
    overrides: { SWEEP_INTERVAL_MS: '3600000', SWEEP_GRACE_MS: '10000' },
  });
  await insertFixture();
});

afterAll(async () => {
  await system?.stop();
  await env?.dispose();
});

/**
 * R1 has one delivered delivery with attempts (1, failed_timeout),
 * (2, failed_http_error, 503) and (3, succeeded, 200), and one pending
 * delivery for the claim checks. R2 has no deliveries.
 */
async function insertFixture(): Promise<void> {
  const q = (sql: string, values: unknown[] = []) => env.pool.query(sql, values);
  await q(
    `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
     VALUES ($1, 'types-r1', 'http://127.0.0.1:9/hook', now(), now()),
            ($2, 'types-r2', 'http://127.0.0.1:9/hook', now(), now())`,
    [ids.r1, ids.r2],
  );
  await q(
    `INSERT INTO webhook_secret (id, rx_id, secret, time_created, time_modified)
     VALUES (gen_random_uuid(), $1, $3, now(), now()), (gen_random_uuid(), $2, $4, now(), now())`,
    [ids.r1, ids.r2, generateSecret(), generateSecret()],
  );
  await q(
    `INSERT INTO webhook_rx_subscription (rx_id, event_class, time_created)
     VALUES ($1, 'types.one', now()), ($2, 'types.two', now())`,
    [ids.r1, ids.r2],
  );
  await q(
    `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
     VALUES ($1, 'types.one', $3, now() - interval '1 minute', now(), now(), 1),
            ($2, 'types.one', $3, now() - interval '1 minute', now(), now(), 1)`,
    [ids.event, ids.pendingEvent, JSON.stringify(EVENT_DATA)],
  );
  await q(
    `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
     VALUES ($1, $2, $3, 'event', 'delivered', 3, now() - interval '1 minute', now()),
            ($4, $5, $3, 'event', 'pending', 0, now() - interval '1 minute', NULL)`,
    [ids.delivery, ids.event, ids.r1, ids.pendingDelivery, ids.pendingEvent],
  );
  await q(
    `INSERT INTO webhook_delivery_attempt (id, delivery_id, attempt, rx_id, result, response_status,
       response_duration, response_body, unreachable_reason, time_created, deliverator_id)
     VALUES (gen_random_uuid(), $1, 1, $2, 'failed_timeout', NULL, NULL, NULL, NULL, now() - interval '50 seconds', 'fixture'),
            (gen_random_uuid(), $1, 2, $2, 'failed_http_error', 503, 1500, 'busy', NULL, now() - interval '40 seconds', 'fixture'),
            (gen_random_uuid(), $1, 3, $2, 'succeeded', 200, 12, 'ok', NULL, now() - interval '30 seconds', 'fixture')`,
    [ids.delivery, ids.r1],
  );
}

describe('raw query inventory', () => {
  test('every call site has a type check', async () => {
    expect(
      await countRawQuerySites(),
      'raw query call sites per file; add a type check for a new one to this file, then update RAW_QUERY_SITES',
    ).toEqual(RAW_QUERY_SITES);
  });
});

describe('raw query column types', () => {
  test('idempotency claim returns a string id', async () => {
    const keys = new IdempotencyKeys(env.prisma, 60_000, silent);
    const proposed = randomUUID();
    const claimed: unknown[] = [];
    const result = await keys.run(randomUUID(), 'types-hash', proposed, async (eventId) => {
      claimed.push(eventId);
      return { status: 202, body: { ok: true } };
    });
    expect(claimed.map(typeName)).toEqual(['string']);
    expect(claimed[0]).toBe(proposed);
    expect(result.replayed).toBe(false);
  });

  test('publishEvent returns a Date', async () => {
    const added: unknown[] = [];
    // Only `add` of the dispatch queue is used; a stub keeps Redis out of it.
    const dispatchQueue = { add: async (...args: unknown[]) => added.push(args) };
    const publisher = new Publisher({
      prisma: env.prisma,
      dispatchQueue: dispatchQueue as unknown as ConstructorParameters<typeof Publisher>[0]['dispatchQueue'],
      logger: silent,
      maxPayloadBytes: 10_000,
    });
    const id = randomUUID();
    const first = await publisher.publishEvent({ eventClass: 'types.published', data: EVENT_DATA, id });
    const again = await publisher.publishEvent({ eventClass: 'types.published', data: EVENT_DATA, id });
    const expected = {
      id: 'string',
      eventClass: 'string',
      timeCreated: 'date',
      created: 'boolean',
      enqueued: 'boolean',
    };
    expect(typesOf(first), 'a new event').toEqual(expected);
    expect(typesOf(again), 'an event published again').toEqual(expected);
    expect(again.timeCreated.getTime()).toBe(first.timeCreated.getTime());
    expect(added).toHaveLength(2);
  });

  test('claim returns typed delivery', async () => {
    const store = new DeliveryStore(env.pool, 'types-worker', 60_000);
    const claimed = await store.claim(ids.pendingDelivery);
    expect(claimed.kind).toBe('claimed');
    if (claimed.kind !== 'claimed') return;
    expect(typesOf(claimed.delivery)).toEqual({
      id: 'string',
      eventId: 'string',
      rxId: 'string',
      triggeredBy: 'string',
      attempts: 'integer',
      eventClass: 'string',
      // The stored JSON text, kept as text so that its bytes reach receivers unchanged.
      dataJson: 'string',
      eventTimeCreated: 'date',
      endpoint: 'string',
      rxDeleted: 'boolean',
      rxDisabledReason: 'null',
      secrets: 'array<string>',
      rxOrdered: 'boolean',
      // The fixture receiver has no limits; the ordered claim test checks the integers.
      rateLimitPerSecond: 'null',
      maxInFlight: 'null',
    });
    expect(JSON.parse(claimed.delivery.dataJson)).toEqual(EVENT_DATA);

    const leased = await new DeliveryStore(env.pool, 'types-other', 60_000).claim(ids.pendingDelivery);
    expect(typesOf(leased), 'a delivery that another worker holds').toEqual({
      kind: 'string',
      leaseExpiresInMs: 'number',
    });
    expect(leased.kind).toBe('leased');

    const recorded = await store.recordAttempt(
      claimed.delivery,
      {
        result: 'succeeded',
        responseStatus: 200,
        responseDurationMs: 5,
        responseBody: 'ok',
        unreachableReason: null,
      },
      'delivered',
    );
    expect(typeName(recorded), 'recordAttempt result').toBe('boolean');
    expect(recorded).toBe(true);
    expect(await store.claim(ids.pendingDelivery)).toEqual({ kind: 'finished' });
    expect(await store.claim(randomUUID())).toEqual({ kind: 'not_found' });
    await store.release(ids.pendingDelivery);
    await store.finishWithoutAttempt(ids.pendingDelivery, 'types check');
  });

  test('ordered claim returns typed results', async () => {
    const rxId = randomUUID();
    const [older, newer, oldest] = [randomUUID(), randomUUID(), randomUUID()];
    const deliveries = { older: randomUUID(), newer: randomUUID(), oldest: randomUUID() };
    await env.pool.query(
      `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified, ordered,
         rate_limit_per_second, max_in_flight)
       VALUES ($1, 'types-ordered', 'http://127.0.0.1:9/hook', now(), now(), true, 5, 2)`,
      [rxId],
    );
    await env.pool.query(
      `INSERT INTO webhook_secret (id, rx_id, secret, time_created, time_modified)
       VALUES (gen_random_uuid(), $1, $2, now(), now())`,
      [rxId, generateSecret()],
    );
    await env.pool.query(
      `INSERT INTO webhook_rx_subscription (rx_id, event_class, time_created)
       VALUES ($1, 'types.ordered', now())`,
      [rxId],
    );
    await env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
       VALUES ($1, 'types.ordered', '{}', now() - interval '2 minutes', now(), now(), 1),
              ($2, 'types.ordered', '{}', now() - interval '1 minute', now(), now(), 1),
              ($3, 'types.ordered', '{}', now() - interval '3 minutes', now(), now(), 1)`,
      [older, newer, oldest],
    );
    await env.pool.query(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
       VALUES ($1, $2, $3, 'event', 'pending', 0, now() - interval '1 minute'),
              ($4, $5, $3, 'event', 'pending', 0, now() - interval '1 minute')`,
      [deliveries.older, older, rxId, deliveries.newer, newer],
    );
    const added: { data: unknown; opts: { jobId?: unknown } }[] = [];
    // Only `add` of a delivery queue is used.
    const queue = { add: async (_name: string, data: unknown, opts: { jobId?: unknown }) => added.push({ data, opts }) };
    const store = new DeliveryStore(env.pool, 'types-ordered-worker', 60_000);
    const ordering = new OrderedDelivery({
      pool: env.pool,
      queues: { forReceiver: () => queue } as unknown as ConstructorParameters<typeof OrderedDelivery>[0]['queues'],
      deliveratorId: 'types-ordered-worker',
      leaseTimeoutMs: 60_000,
      logger: silent,
    });

    const batch = await store.claim(deliveries.newer);
    expect(typesOf(batch), 'the batch claim of an ordered delivery').toEqual({ kind: 'string', rxId: 'string' });
    expect(batch).toEqual({ kind: 'ordered', rxId });
    const notHead = await ordering.claim(deliveries.newer, rxId);
    expect(typesOf(notHead), 'a delivery that is not the head').toEqual({ kind: 'string', headId: 'string' });
    expect(notHead).toEqual({ kind: 'not_head', headId: deliveries.older });

    const claimed = await ordering.claim(deliveries.older, rxId);
    if (claimed.kind !== 'claimed') throw new Error(`expected a claim, got ${JSON.stringify(claimed)}`);
    expect(typesOf(claimed.delivery)).toMatchObject({
      attempts: 'integer',
      eventTimeCreated: 'date',
      secrets: 'array<string>',
      rxOrdered: 'boolean',
      rateLimitPerSecond: 'integer',
      maxInFlight: 'integer',
    });
    expect(claimed.delivery).toMatchObject({ rxOrdered: true, rateLimitPerSecond: 5, maxInFlight: 2 });

    // A delivery for an earlier event appears while the head is in flight.
    await env.pool.query(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
       VALUES ($1, $2, $3, 'event', 'pending', 0, now() - interval '1 minute')`,
      [deliveries.oldest, oldest, rxId],
    );
    const blocked = await ordering.claim(deliveries.oldest, rxId);
    expect(typesOf(blocked), 'a head behind a delivery in flight').toEqual({
      kind: 'string',
      delayMs: 'integer',
      reason: 'string',
    });
    expect(blocked.kind).toBe('wait');
    // The sweeper does not enqueue a head while another delivery of the receiver is leased.
    const heads = await readOrderedHeads(env.prisma, 0, 60, 100);
    const head = heads.find((row) => row.rx_id === rxId);
    expect(typesOf(head ?? {}), 'the head that the sweeper reads').toEqual({ id: 'string', rx_id: 'string' });
    expect(head?.id).toBe(deliveries.oldest);

    await store.finishWithoutAttempt(deliveries.older, 'types check');
    await ordering.wakeHead(rxId, { id: deliveries.older, attempts: 0 });
    expect(added.map((job) => [typeName(job.opts.jobId), job.data])).toEqual([
      ['string', { deliveryId: deliveries.oldest }],
    ]);
    expect((await ordering.claim(deliveries.oldest, rxId)).kind).toBe('claimed');
  });

  test('dispatchEvent returns typed ids', async () => {
    const eventId = randomUUID();
    await env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
       VALUES ($1, 'types.two', '{}', now(), now())`,
      [eventId],
    );
    const jobs: { data: unknown; opts: { jobId?: unknown } }[] = [];
    const queue = { addBulk: async (added: typeof jobs) => jobs.push(...added) };
    // Only addBulk of a delivery queue is used. The stub offers it both as
    // one queue and as a set of shards that picks a queue per receiver.
    const deps = {
      pool: env.pool,
      logger: silent,
      deliveryQueue: queue,
      deliveryQueues: { forReceiver: () => queue },
    } as unknown as Parameters<typeof dispatchEvent>[0];

    const dispatched = await dispatchEvent(deps, eventId);
    expect(typesOf(dispatched)).toEqual({
      kind: 'string',
      deliveryIds: 'array<string>',
      numDispatched: 'integer',
    });
    expect(dispatched).toMatchObject({ kind: 'dispatched', numDispatched: 1 });

    const repeated = await dispatchEvent(deps, eventId);
    expect(typesOf(repeated)).toEqual({ kind: 'string', deliveryIds: 'array<string>' });
    expect(repeated.kind).toBe('already_dispatched');
    expect(jobs.map((job) => typeName(job.opts.jobId))).toEqual(['string', 'string']);
  });

  test('sweepOnce returns counts and text cursors', async () => {
    const running = system.dispatch!.sweeper;
    // A sweeper like the running one that reads one row per run, so that it
    // keeps a cursor.
    const options = (running as unknown as { options: ConstructorParameters<typeof Sweeper>[0] }).options;
    const sweeper = new Sweeper({ ...options, batchSize: 1 });
    for (const age of [60, 50]) {
      await env.pool.query(
        `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
         VALUES ($1, 'types.unmatched', '{}', now() - make_interval(secs => $2), now())`,
        [randomUUID(), age],
      );
    }
    const result = await sweeper.sweepOnce();
    expect(typesOf(result)).toEqual({ events: 'integer', deliveries: 'integer' });
    const cursor = (sweeper as unknown as { eventCursor: object | null }).eventCursor;
    // The cursor keeps PostgreSQL's text form of time_created, because a
    // Date would drop its microseconds.
    expect(cursor === null ? null : typesOf(cursor), 'event cursor').toEqual({
      id: 'string',
      time_created: 'string',
    });
  });

  test('deleteExpiredRows returns integer counts', async () => {
    const eventId = randomUUID();
    const deliveryId = randomUUID();
    await env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
       VALUES ($1, 'types.two', '{}', now() - interval '40 days', now(), now(), 1)`,
      [eventId],
    );
    await env.pool.query(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
       VALUES ($1, $2, $3, 'event', 'failed', 1, now() - interval '40 days', now() - interval '39 days')`,
      [deliveryId, eventId, ids.r2],
    );
    await env.pool.query(
      `INSERT INTO webhook_delivery_attempt (id, delivery_id, attempt, rx_id, result, unreachable_reason,
         time_created, deliverator_id)
       VALUES (gen_random_uuid(), $1, 1, $2, 'failed_unreachable', 'refused', now() - interval '40 days', 'fixture')`,
      [deliveryId, ids.r2],
    );
    const batches: object[] = [];
    const result = await deleteExpiredRows({
      pool: env.pool,
      maxAgeMs: 30 * 86_400_000,
      batchSize: 100,
      pauseMs: 0,
      onDeleted: (counts) => batches.push(counts),
    });
    expect(typesOf(result)).toEqual({
      events: 'integer',
      deliveries: 'integer',
      attempts: 'integer',
      deliveryStatements: 'integer',
      eventStatements: 'integer',
    });
    expect(result).toMatchObject({ events: 1, deliveries: 1, attempts: 1 });
    for (const batch of batches) {
      expect(typesOf(batch)).toEqual({ events: 'integer', deliveries: 'integer', attempts: 'integer' });
    }
  });

  test('oldest undispatched age is a number', async () => {
    const { rows } = await env.pool.query<{ pending: number }>(
      `SELECT count(*)::int AS pending FROM webhook_event WHERE time_dispatched IS NULL`,
    );
    const age = await readOldestUndispatchedAgeSeconds(env.pool);
    if (rows[0]!.pending === 0) {
      expect(age).toBeNull();
    } else {
      expect(['number', 'integer']).toContain(typeName(age));
      expect(age).toBeGreaterThanOrEqual(0);
    }
  });

  test('migrateDatabase returns names', async () => {
    expect(typeName(await migrateDatabase(env.databaseUrl))).toBe('array<>');
  });

  test('demo report reads numbers', async () => {
    const progress = await readProgress(env.pool);
    expect(typesOf(progress)).toEqual({
      events: 'integer',
      undispatchedEvents: 'integer',
      delivered: 'integer',
      failed: 'integer',
      pending: 'integer',
      attempts: 'integer',
    });
    const results = await readResults(env.pool);
    const pair = results.pairs.find((row) => row.event_id === ids.event);
    expect(pair, `the fixture's delivery pair`).toBeDefined();
    expect(typesOf(pair!)).toEqual({
      event_id: 'string',
      rx_id: 'string',
      rows: 'integer',
      delivery_ids: 'array<string>',
      states: 'array<string>',
      attempts: 'array<integer>',
    });
    expect(pair?.states).toEqual(['delivered']);
    const stored = results.storedEvents.get(ids.event);
    expect(stored, `the fixture's event`).toBeDefined();
    expect(typesOf(stored!)).toEqual({ dispatched: 'boolean', numDispatched: 'integer' });
    const counts = results.countsByReceiver.get(ids.r1);
    expect(typeName(counts?.attemptResults.get('succeeded')), 'count of succeeded attempts').toBe('integer');
    expect(typeName(counts?.deliveries), 'count of deliveries').toBe('integer');
  });

  test('resends and listings return typed views', async () => {
    // A receiver of its own with one failed delivery, so that the rows added
    // here leave the other checks' fixture alone.
    const rxId = randomUUID();
    const eventId = randomUUID();
    const failedId = randomUUID();
    await env.pool.query(
      `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
       VALUES ($1, 'types-r3', 'http://127.0.0.1:9/hook', now(), now())`,
      [rxId],
    );
    await env.pool.query(
      `INSERT INTO webhook_secret (id, rx_id, secret, time_created, time_modified)
       VALUES (gen_random_uuid(), $1, $2, now(), now())`,
      [rxId, generateSecret()],
    );
    await env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
       VALUES ($1, 'types.three', '{}', now() - interval '1 minute', now(), now(), 1)`,
      [eventId],
    );
    await env.pool.query(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
       VALUES ($1, $2, $3, 'event', 'failed', 3, now() - interval '1 minute', now())`,
      [failedId, eventId, rxId],
    );

    const page = await listDeliveries(env.prisma, { rxId }, { limit: 1 });
    expect(typesOf(page)).toEqual({ deliveries: 'array<object>', next_cursor: 'null' });
    expect(typesOf(page.deliveries[0]!)).toEqual({
      id: 'string',
      event_id: 'string',
      rx_id: 'string',
      triggered_by: 'string',
      state: 'string',
      attempts: 'integer',
      failure_reason: 'null',
      time_created: 'iso-string',
      time_completed: 'iso-string',
    });

    // Stubs of the queues keep Redis out of the service.
    const added: unknown[] = [];
    const queue = { add: async (...args: unknown[]) => added.push(args), addBulk: async (jobs: unknown[]) => added.push(...jobs) };
    const service = new RedeliveryService({
      prisma: env.prisma,
      dispatchQueue: queue as never,
      deliveryQueues: { forReceiver: () => queue } as never,
      logger: silent,
      probeTimeoutMs: 50,
      probePollMs: 10,
    });
    const resent = await service.resendDelivery(failedId);
    expect(typesOf(resent)).toMatchObject({ id: 'string', state: 'string', attempts: 'integer', attempt_log: 'array<>' });
    const next = await listDeliveries(env.prisma, { rxId }, { limit: 1 });
    expect(typeName(next.next_cursor), 'cursor of a page with a successor').toBe('string');
    expect(typesOf(decodeCursor(next.next_cursor, 'after'))).toEqual({ timeCreated: 'string', id: 'string' });

    const batch = await service.createBulkResend({ receiver: 'types-r3' });
    const batchTypes = {
      id: 'string',
      rx_id: 'string',
      state: 'string',
      since: 'null',
      until: 'iso-string',
      num_matched: 'integer',
      num_created: 'integer',
      num_skipped: 'integer',
      deliveries: 'object',
      error: 'null',
      time_created: 'iso-string',
      time_modified: 'iso-string',
      time_completed: 'null',
    };
    expect(typesOf(batch)).toEqual(batchTypes);
    expect(typesOf(batch.deliveries)).toEqual({ pending: 'integer', delivered: 'integer', failed: 'integer' });

    const sweeper = new ResendSweeper({
      pool: env.pool,
      dispatchQueue: queue as never,
      logger: silent,
      graceMs: 60_000,
      intervalMs: 3_600_000,
    });
    // The batch changed just now, within the grace, so the sweeper leaves it.
    expect(typeName(await sweeper.sweepOnce()), 'page jobs added').toBe('integer');

    const deps = { pool: env.pool, dispatchQueue: queue as never, deliveryQueues: { forReceiver: () => queue } as never, logger: silent, pageSize: 10 };
    const outcome = await runResendPage(deps, batch.id, 0);
    // The failed delivery matches, but the pending resend above makes it a skip.
    expect(outcome).toEqual({ kind: 'completed', matched: 1, created: 0 });
    expect(typesOf(outcome)).toEqual({ kind: 'string', matched: 'integer', created: 'integer' });
    const finished = await service.getBulkResend(batch.id);
    expect(typesOf(finished)).toEqual({ ...batchTypes, time_completed: 'iso-string' });
    expect(finished.deliveries).toEqual({ pending: 0, delivered: 0, failed: 0 });

    // No delivery worker runs here, so the probe times out after its insert.
    const probe = service.probe('types-r3');
    await expect(probe).rejects.toBeInstanceOf(ProbeTimeoutError);
    const { rows } = await env.pool.query(
      `SELECT 1 FROM webhook_delivery WHERE rx_id = $1 AND triggered_by = 'probe'`,
      [rxId],
    );
    expect(rows).toHaveLength(1);
  });
});

describe('API and CLI output types', () => {
  test('GET event returns data object', async () => {
    const response = await system.request('GET', `/v1/events/${ids.event}`);
    expect(response.status).toBe(200);
    expect(typesOf(response.body)).toEqual({
      id: 'string',
      event_class: 'string',
      data: 'object',
      time_created: 'iso-string',
      time_dispatched: 'iso-string',
      num_dispatched: 'integer',
    });
    expect(response.body.data).toEqual(EVENT_DATA);
  });

  test('GET deliveries returns typed attempts', async () => {
    const response = await system.request('GET', `/v1/events/${ids.event}/deliveries`);
    expect(response.status).toBe(200);
    expectTypedDeliveries(response.body);
  });

  test('CLI deliveries prints typed attempts', async () => {
    let stdout = '';
    let stderr = '';
    const sink = (append: (text: string) => void) =>
      new Writable({
        write(chunk, _encoding, done) {
          append(String(chunk));
          done();
        },
      });
    const status = await runCli(['events', 'deliveries', ids.event], {
      stdin: new PassThrough(),
      stdout: sink((text) => (stdout += text)),
      stderr: sink((text) => (stderr += text)),
      env: { WEBHOOKS_API_URL: system.api.url },
    });
    expect(status, stderr).toBe(0);
    expectTypedDeliveries(JSON.parse(stdout));
  });

  test('GET receivers returns arrays', async () => {
    const response = await system.request('GET', '/v1/receivers');
    expect(response.status).toBe(200);
    expect(typesOf(response.body)).toEqual({ receivers: 'array<object>', next_after: 'null' });
    for (const receiver of response.body.receivers) {
      expect(typesOf(receiver), `receiver ${receiver.name}`).toEqual({
        id: 'string',
        name: 'string',
        description: 'string',
        endpoint: 'string',
        // The resend fixture's receiver is inserted in SQL without subscriptions.
        subscriptions: receiver.name === 'types-r3' ? 'array<>' : 'array<string>',
        filters: 'object',
        secrets: 'array<object>',
        ordered: 'boolean',
        // Of the fixture receivers, only the ordered claim test's has limits.
        rate_limit_per_second: receiver.name === 'types-ordered' ? 'integer' : 'null',
        max_in_flight: receiver.name === 'types-ordered' ? 'integer' : 'null',
        time_disabled: 'null',
        disabled_reason: 'null',
        time_created: 'iso-string',
        time_modified: 'iso-string',
      });
      expect(typesOf(receiver.secrets[0])).toEqual({ id: 'string', time_created: 'iso-string' });
    }
    const names = response.body.receivers.map((receiver: { name: string }) => receiver.name);
    expect(names).toContain('types-r2');
  });

  test('GET health returns ok', async () => {
    const response = await system.request('GET', '/health');
    expect(response.body).toEqual({ postgres: 'ok', redis: 'ok' });
  });
});

function expectTypedDeliveries(body: { deliveries: Record<string, unknown>[] }): void {
  expect(typesOf(body)).toEqual({ deliveries: 'array<object>' });
  expect(body.deliveries).toHaveLength(1);
  const delivery = body.deliveries[0]!;
  expect(typesOf(delivery)).toEqual({
    id: 'string',
    event_id: 'string',
    rx_id: 'string',
    triggered_by: 'string',
    state: 'string',
    attempts: 'integer',
    failure_reason: 'null',
    time_created: 'iso-string',
    time_completed: 'iso-string',
    attempt_log: 'array<object>',
  });
  const attempts = delivery.attempt_log as Record<string, unknown>[];
  expect(attempts.map((attempt) => attempt.result)).toEqual([
    'failed_timeout',
    'failed_http_error',
    'succeeded',
  ]);
  expect(attempts.map((attempt) => [attempt.response_status, attempt.response_duration_ms])).toEqual([
    [null, null],
    [503, 1500],
    [200, 12],
  ]);
  for (const attempt of attempts) {
    expect(typesOf(attempt), `attempt ${attempt.attempt}`).toMatchObject({
      attempt: 'integer',
      result: 'string',
      time_created: 'iso-string',
    });
  }
}

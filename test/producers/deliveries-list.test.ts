import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Prisma } from '../../shared/db/client.js';
import { buildListQuery, type DeliveryFilter } from '../../producers/deliveries-query.js';
import { RESEND_PAGE_SQL } from '../../workers/dispatch/resend-batch.js';
import { useSystem } from '../helpers/system-fixture.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

interface FixtureDelivery {
  id: string;
  rx: 'A' | 'B';
  state: 'pending' | 'delivered' | 'failed';
  /** PostgreSQL text of time_created, with microseconds. */
  time: string;
}

const STATES = ['delivered', 'failed', 'pending'] as const;

/**
 * Eight deliveries of A one minute apart, two of which share one
 * time_created to the microsecond, and four of B. Ids are random, so the
 * order of the two that share a time is decided by their ids.
 */
function fixtureDeliveries(): FixtureDelivery[] {
  const rows: FixtureDelivery[] = [];
  for (let index = 0; index < 8; index++) {
    const minute = index === 5 ? 4 : index;
    rows.push({
      id: randomUUID(),
      rx: 'A',
      state: STATES[index % 3]!,
      time: `2026-11-01 10:0${minute}:00.123456+00`,
    });
  }
  for (let index = 0; index < 4; index++) {
    rows.push({
      id: randomUUID(),
      rx: 'B',
      state: STATES[(index + 1) % 3]!,
      time: `2026-11-01 10:0${index}:30.5+00`,
    });
  }
  return rows;
}

/** Newest first: time_created descending, then id descending. */
function newestFirst(rows: FixtureDelivery[]): string[] {
  return [...rows]
    .sort((a, b) => (a.time === b.time ? b.id.localeCompare(a.id) : b.time.localeCompare(a.time)))
    .map((row) => row.id);
}

describe('GET /v1/deliveries', () => {
  const fixture = useSystem({ dispatch: false, delivery: false });
  const deliveries = fixtureDeliveries();
  const rxIds = { A: randomUUID(), B: randomUUID() };
  const eventIds = deliveries.map(() => randomUUID());
  const attemptDelivery = deliveries[0]!;

  beforeAll(async () => {
    const q = (sql: string, values: unknown[] = []) => fixture.env.pool.query(sql, values);
    await q(
      `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
       VALUES ($1, 'list-a', 'http://127.0.0.1:9/a', now(), now()),
              ($2, 'list-b', 'http://127.0.0.1:9/b', now(), now())`,
      [rxIds.A, rxIds.B],
    );
    await q(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
       SELECT id, 'list.created', '{}', now(), now(), now(), 1 FROM unnest($1::uuid[]) AS id`,
      [eventIds],
    );
    await q(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
       SELECT t.id, t.event_id, t.rx_id, 'event', t.state::webhook_delivery_state, 0, t.time::timestamptz,
         CASE WHEN t.state = 'pending' THEN NULL ELSE now() END
       FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
         AS t(id, event_id, rx_id, state, time)`,
      [
        deliveries.map((row) => row.id),
        eventIds,
        deliveries.map((row) => rxIds[row.rx]),
        deliveries.map((row) => row.state),
        deliveries.map((row) => row.time),
      ],
    );
    await q(
      `UPDATE webhook_delivery SET attempts = 2 WHERE id = $1`,
      [attemptDelivery.id],
    );
    await q(
      `INSERT INTO webhook_delivery_attempt (id, delivery_id, attempt, rx_id, result, response_status,
         response_duration, response_body, unreachable_reason, time_created, deliverator_id)
       VALUES (gen_random_uuid(), $1, 1, $2, 'failed_unreachable', NULL, NULL, NULL, 'connection refused', now(), 'fixture'),
              (gen_random_uuid(), $1, 2, $2, 'succeeded', 200, 15, 'ok', NULL, now(), 'fixture')`,
      [attemptDelivery.id, rxIds.A],
    );
    // B is deleted; its history stays listable by id.
    await q(`UPDATE webhook_rx SET time_deleted = now() WHERE id = $1`, [rxIds.B]);
  });

  async function listIds(query: string): Promise<string[]> {
    const response = await fixture.system.request('GET', `/v1/deliveries${query}`);
    expect(response.status, `${query}: ${JSON.stringify(response.body)}`).toBe(200);
    return response.body.deliveries.map((delivery: { id: string }) => delivery.id);
  }

  test('every filter combination', async () => {
    const since = '2026-11-01T10:01:00Z';
    const until = '2026-11-01T10:05:00Z';
    const inRange = (row: FixtureDelivery) =>
      row.time >= '2026-11-01 10:01:00' && row.time < '2026-11-01 10:05:00';
    const cases: [string, (row: FixtureDelivery) => boolean][] = [
      ['', () => true],
      [`?receiver=${rxIds.A}`, (row) => row.rx === 'A'],
      ['?receiver=list-a', (row) => row.rx === 'A'],
      [`?receiver=${rxIds.A}&state=failed`, (row) => row.rx === 'A' && row.state === 'failed'],
      [`?receiver=${rxIds.A}&since=${since}&until=${until}`, (row) => row.rx === 'A' && inRange(row)],
      [
        `?receiver=${rxIds.A}&state=delivered&since=${since}&until=${until}`,
        (row) => row.rx === 'A' && row.state === 'delivered' && inRange(row),
      ],
      ['?state=pending', (row) => row.state === 'pending'],
      [`?state=failed&since=${since}`, (row) => row.state === 'failed' && row.time >= '2026-11-01 10:01:00'],
      [`?until=${until}`, (row) => row.time < '2026-11-01 10:05:00'],
      [`?since=${since}&until=${until}`, inRange],
      [`?receiver=${rxIds.B}`, (row) => row.rx === 'B'],
    ];
    for (const [query, keep] of cases) {
      const expected = newestFirst(deliveries.filter(keep));
      expect(expected.length, `fixture rows for "${query}"`).toBeGreaterThan(0);
      expect(await listIds(query), query).toEqual(expected);
    }
  });

  test('shows summaries without attempts', async () => {
    const response = await fixture.system.request('GET', `/v1/deliveries?receiver=list-a&limit=1`);
    const [first] = response.body.deliveries;
    expect(Object.keys(first).sort()).toEqual(
      ['attempts', 'event_id', 'failure_reason', 'id', 'rx_id', 'state', 'time_completed', 'time_created', 'triggered_by'],
    );
    expect(first.rx_id).toBe(rxIds.A);
    expect(first.time_created).toBe('2026-11-01T10:07:00.123Z');
  });

  test('pages with after', async () => {
    const expected = newestFirst(deliveries.filter((row) => row.rx === 'A'));
    const seen: string[] = [];
    const pageSizes: number[] = [];
    let after: string | null = null;
    do {
      const query: string = `?receiver=list-a&limit=3${after === null ? '' : `&after=${after}`}`;
      const response = await fixture.system.request('GET', `/v1/deliveries${query}`);
      expect(response.status).toBe(200);
      pageSizes.push(response.body.deliveries.length);
      seen.push(...response.body.deliveries.map((delivery: { id: string }) => delivery.id));
      after = response.body.next_after;
    } while (after !== null && pageSizes.length < 10);
    expect(pageSizes).toEqual([3, 3, 2]);
    expect(seen).toEqual(expected);
  });

  test('new rows leave pages unchanged', async () => {
    const expected = newestFirst(deliveries.filter((row) => row.rx === 'A'));
    const first = await fixture.system.request('GET', '/v1/deliveries?receiver=list-a&limit=4');
    const newEvent = randomUUID();
    await fixture.env.pool.query(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified) VALUES ($1, 'list.created', '{}', now(), now())`,
      [newEvent],
    );
    const newDelivery = randomUUID();
    await fixture.env.pool.query(
      `INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
       VALUES ($1, $2, $3, 'resend', 'pending', 0, now())`,
      [newDelivery, newEvent, rxIds.A],
    );
    try {
      const second = await fixture.system.request(
        'GET',
        `/v1/deliveries?receiver=list-a&limit=4&after=${first.body.next_after}`,
      );
      const ids = [...first.body.deliveries, ...second.body.deliveries].map(
        (delivery: { id: string }) => delivery.id,
      );
      expect(ids).toEqual(expected);
      expect(second.body.next_after).toBeNull();
      expect((await listIds('?receiver=list-a&limit=1'))[0]).toBe(newDelivery);
    } finally {
      await fixture.env.pool.query('DELETE FROM webhook_delivery WHERE id = $1', [newDelivery]);
    }
  });

  test('deleted receiver by name is 404', async () => {
    const response = await fixture.system.request('GET', '/v1/deliveries?receiver=list-b');
    expect(response.status).toBe(404);
    expect(response.body.error.message).toBe('receiver "list-b" was not found');
  });

  test('invalid query is 400', async () => {
    const cases: [string, string][] = [
      ['?state=lost', 'state: must be one of "pending", "delivered", "failed", got "lost"'],
      ['?since=yesterday', 'since: must be a timestamp with a time zone such as "2026-12-01T00:00:00Z", got "yesterday"'],
      ['?until=2026-11-01T10:00:00', 'until: must be a timestamp with a time zone'],
      ['?after=bm90LWEtY3Vyc29y', 'after: is not a cursor from this API'],
      ['?limit=0', 'limit: must be a whole number from 1 to 1000'],
      ['?limit=1001', 'limit: must be a whole number from 1 to 1000'],
      ['?status=failed', 'has unknown field(s) "status"'],
    ];
    for (const [query, message] of cases) {
      const response = await fixture.system.request('GET', `/v1/deliveries${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error.message, query).toContain(message);
    }
  });

  test('GET one shows attempts', async () => {
    const response = await fixture.system.request('GET', `/v1/deliveries/${attemptDelivery.id}`);
    expect(response.status).toBe(200);
    expect(response.body.id).toBe(attemptDelivery.id);
    expect(response.body.attempts).toBe(2);
    expect(response.body.attempt_log).toEqual([
      expect.objectContaining({
        attempt: 1,
        result: 'failed_unreachable',
        response_status: null,
        unreachable_reason: 'connection refused',
      }),
      expect.objectContaining({ attempt: 2, result: 'succeeded', response_status: 200, response_duration_ms: 15 }),
    ]);
  });
});

type PlanNode = {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
};

function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}

function describePlan(nodes: PlanNode[]): string {
  return nodes
    .map((node) => `${node['Node Type']}${node['Index Name'] ? ` using ${node['Index Name']}` : ''}${node['Relation Name'] ? ` on ${node['Relation Name']}` : ''}`)
    .join(' / ');
}

const INDEX_SCANS = new Set(['Index Scan', 'Index Only Scan', 'Bitmap Index Scan']);

/** Collects the indexes through which the plan reads webhook_delivery, and fails on a sequential scan of it. */
function deliveryIndexes(plan: unknown): { indexes: Set<string>; sorts: number; text: string } {
  const root = (Array.isArray(plan) ? plan[0] : plan) as { Plan: PlanNode };
  const nodes = planNodes(root.Plan);
  const text = describePlan(nodes);
  const sequential = nodes.filter(
    (node) => node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'webhook_delivery',
  );
  expect(sequential, `sequential scans of webhook_delivery in: ${text}`).toEqual([]);
  const indexes = new Set(
    nodes.filter((node) => INDEX_SCANS.has(node['Node Type'])).map((node) => node['Index Name']!),
  );
  const sorts = nodes.filter((node) => node['Node Type'].endsWith('Sort')).length;
  return { indexes, sorts, text };
}

// 100 receivers with 1,000 deliveries each over about four weeks, 8% failed
// and 2% pending. The table is analyzed and sequential scans stay allowed,
// so the planner picks each plan by its cost estimate on realistic counts.
describe('delivery queries use indexes', () => {
  let env: TestEnv;
  let rxId: string;
  const day = 86_400_000;
  const now = Date.now();
  const window = { since: new Date(now - 10 * day), until: new Date(now - 8 * day) };

  beforeAll(async () => {
    env = await createTestEnv();
    await env.pool.query(`
      INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
      SELECT gen_random_uuid(), 'plan-' || g, 'http://127.0.0.1:9/hook', now(), now()
      FROM generate_series(1, 100) AS g`);
    await env.pool.query(`
      INSERT INTO webhook_event (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
      SELECT gen_random_uuid(), 'plan.created', '{}', now() - g * interval '40 minutes', now(), now(), 100
      FROM generate_series(1, 1000) AS g`);
    await env.pool.query(`
      INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created, time_completed)
      SELECT gen_random_uuid(), e.id, r.id, 'event', s.state, 1,
        e.time_created + (r.n % 60) * interval '1 second',
        CASE WHEN s.state = 'pending' THEN NULL ELSE now() END
      FROM (SELECT id, time_created, row_number() OVER (ORDER BY id) AS n FROM webhook_event) e
      CROSS JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM webhook_rx) r
      CROSS JOIN LATERAL (SELECT CASE (e.n * 7 + r.n * 13) % 50
          WHEN 0 THEN 'pending'::webhook_delivery_state
          WHEN 1 THEN 'failed' WHEN 2 THEN 'failed' WHEN 3 THEN 'failed' WHEN 4 THEN 'failed'
          ELSE 'delivered' END AS state) s`);
    await env.pool.query('ANALYZE webhook_rx, webhook_event, webhook_delivery');
    const { rows } = await env.pool.query<{ id: string }>(`SELECT id::text FROM webhook_rx WHERE name = 'plan-42'`);
    rxId = rows[0]!.id;
  }, 120_000);

  afterAll(async () => {
    await env?.dispose();
  });

  async function explainList(filter: DeliveryFilter, withCursor = false) {
    const cursor = withCursor
      ? { timeCreated: new Date(now - 9 * day).toISOString().replace('T', ' ').replace('Z', '+00'), id: randomUUID() }
      : undefined;
    const rows = await env.prisma.$queryRaw<{ 'QUERY PLAN': unknown }[]>(
      Prisma.sql`EXPLAIN (FORMAT JSON) ${buildListQuery(filter, cursor, 101)}`,
    );
    const plan = rows[0]!['QUERY PLAN'];
    return deliveryIndexes(typeof plan === 'string' ? JSON.parse(plan) : plan);
  }

  test('table has realistic counts', async () => {
    const { rows } = await env.pool.query<{ state: string; count: number }>(
      `SELECT state::text, count(*)::int AS count FROM webhook_delivery GROUP BY state ORDER BY state`,
    );
    expect(rows).toEqual([
      { state: 'delivered', count: 90_000 },
      { state: 'failed', count: 8_000 },
      { state: 'pending', count: 2_000 },
    ]);
  });

  test('each list filter uses its index', async () => {
    const cases: [string, DeliveryFilter, string][] = [
      ['none', {}, 'lookup_webhook_deliveries_by_time'],
      ['receiver', { rxId }, 'lookup_webhook_deliveries_by_rx'],
      ['receiver+state', { rxId, state: 'failed' }, 'lookup_webhook_deliveries_by_rx_state'],
      ['receiver+time', { rxId, ...window }, 'lookup_webhook_deliveries_by_rx'],
      ['receiver+state+time', { rxId, state: 'failed', ...window }, 'lookup_webhook_deliveries_by_rx_state'],
      ['state', { state: 'failed' }, 'lookup_webhook_deliveries_by_state'],
      ['state+time', { state: 'failed', ...window }, 'lookup_webhook_deliveries_by_state'],
      ['time', window, 'lookup_webhook_deliveries_by_time'],
      ['since only', { since: window.since }, 'lookup_webhook_deliveries_by_time'],
    ];
    for (const [name, filter, index] of cases) {
      for (const withCursor of [false, true]) {
        const { indexes, sorts, text } = await explainList(filter, withCursor);
        const label = `${name}${withCursor ? ' with a cursor' : ''}: ${text}`;
        expect([...indexes], label).toEqual([index]);
        // An index scan gives the page's order. The planner may instead
        // sort the few rows that a bitmap scan of the index finds.
        if (!text.includes('Bitmap Index Scan')) expect(sorts, label).toBe(0);
      }
    }
  });

  test('resend pages use indexes', async () => {
    const parameters = ['-infinity', '00000000-0000-0000-0000-000000000000', new Date(now).toISOString(), 500, randomUUID()];
    const cases: [string, string, unknown[], string][] = [
      ['one receiver', RESEND_PAGE_SQL.forReceiver, [...parameters, rxId], 'lookup_webhook_deliveries_by_rx_state'],
      ['every receiver', RESEND_PAGE_SQL.forAll, parameters, 'lookup_webhook_deliveries_by_state'],
    ];
    for (const [name, sql, values, index] of cases) {
      const { rows } = await env.pool.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${sql}`, values);
      const { indexes, text } = deliveryIndexes(rows[0]!['QUERY PLAN']);
      expect(indexes.has(index), `${name}: ${text}`).toBe(true);
      // The check for a delivered or pending delivery of the same event and
      // receiver reads by (rx_id, event_id).
      expect(indexes.has('lookup_webhook_dispatched_to_rx') || indexes.has('one_webhook_event_dispatch_per_rx'), `${name}: ${text}`).toBe(true);
    }
  });
});

import type pg from 'pg';
import type { PublishSummary } from './api-client.js';
import type { DemoEvent } from './examples.js';
import { sha256, type VerifyingReceiver } from './receiver.js';

/** Counts that the progress line shows, read from PostgreSQL. */
export interface Progress {
  events: number;
  undispatchedEvents: number;
  delivered: number;
  failed: number;
  pending: number;
  attempts: number;
}

export async function readProgress(pool: pg.Pool): Promise<Progress> {
  const { rows } = await pool.query<Progress>(`
    SELECT
      (SELECT count(*) FROM webhook_event)::int AS "events",
      (SELECT count(*) FROM webhook_event WHERE time_dispatched IS NULL)::int AS "undispatchedEvents",
      (SELECT count(*) FROM webhook_delivery WHERE state = 'delivered')::int AS "delivered",
      (SELECT count(*) FROM webhook_delivery WHERE state = 'failed')::int AS "failed",
      (SELECT count(*) FROM webhook_delivery WHERE time_completed IS NULL)::int AS "pending",
      (SELECT count(*) FROM webhook_delivery_attempt)::int AS "attempts"`);
  return rows[0]!;
}

/** A receiver of the demo: its API record, subscriptions and local server. */
export interface DemoReceiver {
  readonly id: string;
  readonly subscriptions: readonly string[];
  readonly server: VerifyingReceiver;
  /** Ids of the events that this receiver subscribes to, computed by the demo. */
  readonly expectedEventIds: ReadonlySet<string>;
}

const ATTEMPT_RESULTS = [
  'succeeded',
  'failed_http_error',
  'failed_unreachable',
  'failed_timeout',
] as const;

interface PairRow {
  event_id: string;
  rx_id: string;
  rows: number;
  delivery_ids: string[];
  states: string[];
  attempts: number[];
}

interface ReceiverCounts {
  deliveries: number;
  states: Map<string, number>;
  attemptResults: Map<string, number>;
}

/** Everything the final table and checks need, read once from PostgreSQL. */
export interface DemoResults {
  readonly storedEvents: Map<string, { dispatched: boolean; numDispatched: number }>;
  readonly pairs: PairRow[];
  readonly countsByReceiver: Map<string, ReceiverCounts>;
}

export async function readResults(pool: pg.Pool): Promise<DemoResults> {
  const events = await pool.query<{ id: string; dispatched: boolean; num_dispatched: number }>(
    `SELECT id::text, time_dispatched IS NOT NULL AS dispatched, num_dispatched
     FROM webhook_event`,
  );
  const pairs = await pool.query<PairRow>(
    `SELECT event_id::text, rx_id::text, count(*)::int AS rows,
            array_agg(id::text) AS delivery_ids,
            array_agg(state::text) AS states,
            array_agg(attempts) AS attempts
     FROM webhook_delivery
     WHERE triggered_by = 'event'
     GROUP BY event_id, rx_id`,
  );
  const states = await pool.query<{ rx_id: string; state: string; count: number }>(
    `SELECT rx_id::text, state::text, count(*)::int AS count
     FROM webhook_delivery GROUP BY rx_id, state`,
  );
  const attempts = await pool.query<{ rx_id: string; result: string; count: number }>(
    `SELECT rx_id::text, result::text, count(*)::int AS count
     FROM webhook_delivery_attempt GROUP BY rx_id, result`,
  );

  const countsByReceiver = new Map<string, ReceiverCounts>();
  const countsOf = (rxId: string): ReceiverCounts => {
    let counts = countsByReceiver.get(rxId);
    if (counts === undefined) {
      counts = { deliveries: 0, states: new Map(), attemptResults: new Map() };
      countsByReceiver.set(rxId, counts);
    }
    return counts;
  };
  for (const row of states.rows) {
    const counts = countsOf(row.rx_id);
    counts.deliveries += row.count;
    counts.states.set(row.state, row.count);
  }
  for (const row of attempts.rows) {
    countsOf(row.rx_id).attemptResults.set(row.result, row.count);
  }
  return {
    storedEvents: new Map(
      events.rows.map((row) => [
        row.id,
        { dispatched: row.dispatched, numDispatched: row.num_dispatched },
      ]),
    ),
    pairs: pairs.rows,
    countsByReceiver,
  };
}

/** How many examples each check prints before it only counts the rest. */
const EXAMPLES_PER_PROBLEM = 3;

/**
 * Compares what PostgreSQL recorded and what the receivers saw with what the
 * demo expected. Returns one line per kind of problem, or none when it passed.
 */
export function findProblems(input: {
  events: readonly DemoEvent[];
  receivers: readonly DemoReceiver[];
  published: PublishSummary;
  results: DemoResults;
}): string[] {
  const { events, receivers, published, results } = input;
  const problems: string[] = [];
  const addProblem = (description: string, examples: string[]) => {
    if (examples.length === 0) return;
    const listed = examples.slice(0, EXAMPLES_PER_PROBLEM).join('; ');
    const hidden = examples.length - EXAMPLES_PER_PROBLEM;
    const more = hidden > 0 ? `; and ${hidden} more` : '';
    problems.push(`${examples.length} ${description}: ${listed}${more}`);
  };

  addProblem(
    'events rejected by the API',
    published.rejected.map((rejection) => `${rejection.event.eventClass} (${rejection.reason})`),
  );

  const receiverById = new Map(receivers.map((receiver) => [receiver.id, receiver]));
  const expectedCount = (eventId: string) =>
    receivers.filter((receiver) => receiver.expectedEventIds.has(eventId)).length;
  const notDispatched: string[] = [];
  const wrongFanOut: string[] = [];
  for (const event of events) {
    const stored = results.storedEvents.get(event.id);
    if (stored === undefined) continue; // counted as missing deliveries below
    if (!stored.dispatched) {
      notDispatched.push(`${event.eventClass} event ${event.id}`);
    } else if (stored.numDispatched !== expectedCount(event.id)) {
      wrongFanOut.push(
        `${event.eventClass} event ${event.id} has num_dispatched ${stored.numDispatched}, expected ${expectedCount(event.id)}`,
      );
    }
  }
  addProblem('events not dispatched', notDispatched);
  addProblem('events dispatched to the wrong number of receivers', wrongFanOut);

  const pairKey = (eventId: string, rxId: string) => `${eventId}/${rxId}`;
  const pairs = new Map(results.pairs.map((pair) => [pairKey(pair.event_id, pair.rx_id), pair]));
  const eventById = new Map(events.map((event) => [event.id, event]));
  const dataHashById = new Map(
    events.map((event) => [event.id, sha256(JSON.stringify(event.data))]),
  );

  const missing: string[] = [];
  for (const receiver of receivers) {
    for (const eventId of receiver.expectedEventIds) {
      if (!pairs.has(pairKey(eventId, receiver.id))) {
        missing.push(`${eventById.get(eventId)?.eventClass} event ${eventId} to ${receiver.server.name}`);
      }
    }
  }
  addProblem('deliveries missing', missing);

  const unexpected: string[] = [];
  const duplicated: string[] = [];
  const notDelivered: string[] = [];
  const unverified: string[] = [];
  const altered: string[] = [];
  for (const pair of results.pairs) {
    const receiver = receiverById.get(pair.rx_id);
    const eventClass = eventById.get(pair.event_id)?.eventClass ?? 'unknown';
    const receiverName = receiver?.server.name ?? `receiver ${pair.rx_id}`;
    const label = `${eventClass} event ${pair.event_id} to ${receiverName}`;
    if (receiver === undefined || !receiver.expectedEventIds.has(pair.event_id)) {
      unexpected.push(label);
    }
    if (pair.rows > 1) {
      duplicated.push(`${label} has ${pair.rows} webhook_delivery rows`);
    }
    pair.delivery_ids.forEach((deliveryId, index) => {
      const state = pair.states[index];
      if (state !== 'delivered') {
        notDelivered.push(`${label}: delivery ${deliveryId} is ${state} after ${pair.attempts[index]} attempts`);
        return;
      }
      const seen = receiver?.server.stats.delivered.get(deliveryId);
      if (seen === undefined) {
        unverified.push(
          `${label}: delivery ${deliveryId} is delivered, but its receiver never accepted a verified request with that webhook-id`,
        );
        return;
      }
      const sameData = seen.dataSha256 === dataHashById.get(pair.event_id);
      if (seen.eventId !== pair.event_id || !sameData) {
        altered.push(
          `${label}: delivery ${deliveryId} arrived with event_id ${seen.eventId} and ${sameData ? 'the published data' : 'different data'}`,
        );
      }
    });
  }
  addProblem('deliveries to receivers that do not subscribe to the event', unexpected);
  addProblem('events dispatched more than once to one receiver', duplicated);
  addProblem('deliveries not delivered', notDelivered);
  addProblem('deliveries not verified by their receiver', unverified);
  addProblem('deliveries whose payload differs from the published event', altered);

  for (const receiver of receivers) {
    const stats = receiver.server.stats;
    const name = receiver.server.name;
    if (stats.signaturesFailed > 0) {
      problems.push(`${name} rejected ${stats.signaturesFailed} requests whose signature did not verify`);
    }
    if (stats.repeatedSuccesses > 0) {
      problems.push(`${name} got ${stats.repeatedSuccesses} requests for deliveries that it had already accepted`);
    }
    const attemptRows = [...(results.countsByReceiver.get(receiver.id)?.attemptResults.values() ?? [])]
      .reduce((total, count) => total + count, 0);
    if (attemptRows !== stats.requests) {
      problems.push(`${name} got ${stats.requests} requests, but PostgreSQL has ${attemptRows} attempt rows for it`);
    }
  }
  return problems;
}

/** Formats the final table: one column per receiver and a total. */
export function formatTable(input: {
  receivers: readonly DemoReceiver[];
  results: DemoResults;
}): string {
  const { receivers, results } = input;
  const columns = receivers.map((receiver) => {
    const counts = results.countsByReceiver.get(receiver.id);
    const stats = receiver.server.stats;
    return {
      title: receiver.server.name,
      expected: receiver.expectedEventIds.size,
      deliveries: counts?.deliveries ?? 0,
      delivered: counts?.states.get('delivered') ?? 0,
      failed: counts?.states.get('failed') ?? 0,
      pending: counts?.states.get('pending') ?? 0,
      attempts: ATTEMPT_RESULTS.map((result) => counts?.attemptResults.get(result) ?? 0),
      signaturesPassed: stats.signaturesPassed,
      signaturesFailed: stats.signaturesFailed,
      plannedFailures: stats.plannedFailures,
      repeatedSuccesses: stats.repeatedSuccesses,
    };
  });
  const sum = (pick: (column: (typeof columns)[number]) => number) =>
    columns.reduce((total, column) => total + pick(column), 0);

  const rows: [string, ...number[]][] = [
    ['expected deliveries', ...columns.map((c) => c.expected), sum((c) => c.expected)],
    ['deliveries (rows)', ...columns.map((c) => c.deliveries), sum((c) => c.deliveries)],
    ['  delivered', ...columns.map((c) => c.delivered), sum((c) => c.delivered)],
    ['  failed', ...columns.map((c) => c.failed), sum((c) => c.failed)],
    ['  pending', ...columns.map((c) => c.pending), sum((c) => c.pending)],
    [
      'attempts',
      ...columns.map((c) => c.attempts.reduce((a, b) => a + b, 0)),
      sum((c) => c.attempts.reduce((a, b) => a + b, 0)),
    ],
    ...ATTEMPT_RESULTS.map((result, index): [string, ...number[]] => [
      `  ${result}`,
      ...columns.map((c) => c.attempts[index]!),
      sum((c) => c.attempts[index]!),
    ]),
    ['signature checks passed', ...columns.map((c) => c.signaturesPassed), sum((c) => c.signaturesPassed)],
    ['signature checks failed', ...columns.map((c) => c.signaturesFailed), sum((c) => c.signaturesFailed)],
    ['5xx sent by the receiver', ...columns.map((c) => c.plannedFailures), sum((c) => c.plannedFailures)],
    ['repeats after a 200', ...columns.map((c) => c.repeatedSuccesses), sum((c) => c.repeatedSuccesses)],
  ];
  const header = ['', ...columns.map((c) => c.title), 'total'];
  const labelWidth = Math.max(...rows.map((row) => row[0].length));
  const cellWidth = Math.max(8, ...header.slice(1).map((title) => title.length));
  const line = (cells: readonly (string | number)[]) =>
    cells
      .map((cell, index) =>
        index === 0 ? String(cell).padEnd(labelWidth) : String(cell).padStart(cellWidth),
      )
      .join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

import type pg from 'pg';
import type { FleetStats } from './fleet.js';
import { expectedReceivers, type PlannedEvent, type ReceiverPlan } from './plan.js';
import type { ReceivedRequest } from './receiver.js';

/** Facts about the run, which the report checks against the database. */
export interface RunFacts {
  events: readonly PlannedEvent[];
  /** Ids of the events whose publish call returned without an error. */
  publishedIds: ReadonlySet<string>;
  publishErrors: number;
  receivers: readonly ReceiverPlan[];
  /** Receiver id in the database for each planned receiver, by index. */
  receiverIds: readonly string[];
  requests: readonly ReceivedRequest[];
  fleet: FleetStats;
  flushedKeys: number;
  /** ms from the last kill or flush until every delivery had finished; null when it never did. */
  drainAfterLastDisruptionMs: number | null;
  durationMs: number;
}

/** One line of the final table. */
export interface ReportRow {
  label: string;
  value: string;
  /** True when the value breaks a guarantee, so that the run fails. */
  failed: boolean;
}

/** The final table, and the ids behind each failed line for a closer look. */
export interface ChaosReport {
  rows: ReportRow[];
  failed: boolean;
  /** Up to 5 example ids or descriptions per failed line. */
  examples: Record<string, string[]>;
}

interface EventRow {
  id: string;
  dispatched: boolean;
}

interface DeliveryRow {
  id: string;
  event_id: string;
  rx_id: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  numbers: number[];
  last_result: string | null;
}

/**
 * Reads every event, delivery and attempt row of the run and checks them
 * against the plan and the receiver's log.
 */
export async function buildReport(pool: pg.Pool, facts: RunFacts): Promise<ChaosReport> {
  const events = (
    await pool.query<EventRow>(
      `SELECT id::text, time_dispatched IS NOT NULL AS dispatched FROM webhook_event`,
    )
  ).rows;
  const deliveries = (
    await pool.query<DeliveryRow>(
      `SELECT d.id::text, d.event_id::text, d.rx_id::text, d.state::text, d.attempts,
         coalesce(array_agg(a.attempt ORDER BY a.attempt) FILTER (WHERE a.attempt IS NOT NULL),
                  '{}') AS numbers,
         (array_agg(a.result::text ORDER BY a.attempt DESC))[1] AS last_result
       FROM webhook_delivery d
       LEFT JOIN webhook_delivery_attempt a ON a.delivery_id = d.id
       WHERE d.triggered_by = 'event'
       GROUP BY d.id`,
    )
  ).rows;

  const examples: Record<string, string[]> = {};
  const note = (label: string, example: string) => {
    const list = (examples[label] ??= []);
    if (list.length < 5) list.push(example);
  };

  // Expected (event, receiver) pairs, computed from the plan for every
  // event that PostgreSQL holds: a publish call that failed after the
  // commit still owes its deliveries.
  const plannedById = new Map(facts.events.map((event) => [event.id, event]));
  const storedIds = new Set(events.map((event) => event.id));
  const expected = new Set<string>();
  for (const event of events) {
    const planned = plannedById.get(event.id);
    if (planned === undefined) continue;
    for (const index of expectedReceivers(planned.eventClass, facts.receivers)) {
      expected.add(`${event.id}/${facts.receiverIds[index]}`);
    }
  }

  const missingEvents = [...facts.publishedIds].filter((id) => !storedIds.has(id));
  missingEvents.forEach((id) => note('published events without a row', id));
  const undispatched = events.filter((event) => !event.dispatched);
  undispatched.forEach((event) => note('events never dispatched', event.id));

  const rowsByPair = new Map<string, DeliveryRow[]>();
  for (const row of deliveries) {
    const pair = `${row.event_id}/${row.rx_id}`;
    rowsByPair.set(pair, [...(rowsByPair.get(pair) ?? []), row]);
  }
  const missingRows = [...expected].filter((pair) => !rowsByPair.has(pair));
  missingRows.forEach((pair) => note('lost: expected delivery without a row', pair));
  const unexpected = [...rowsByPair.keys()].filter((pair) => !expected.has(pair));
  unexpected.forEach((pair) => note('unexpected delivery rows', pair));
  const duplicates = [...rowsByPair.entries()].filter(([, rows]) => rows.length > 1);
  duplicates.forEach(([pair]) => note('duplicate delivery rows', pair));
  const unfinished = deliveries.filter((row) => row.state === 'pending');
  unfinished.forEach((row) => note('lost: delivery never finished', row.id));

  const gaps = deliveries.filter(
    (row) => !row.numbers.every((number, index) => number === index + 1),
  );
  gaps.forEach((row) => note('attempt-number gaps or repeats', `${row.id}: ${row.numbers.join(',')}`));
  const mismatched = deliveries.filter((row) => row.attempts !== row.numbers.length);
  mismatched.forEach((row) =>
    note('attempts column differs from attempt rows', `${row.id}: ${row.attempts} vs ${row.numbers.length}`),
  );
  const stateMismatch = deliveries.filter(
    (row) => row.state !== 'pending' && (row.state === 'delivered') !== (row.last_result === 'succeeded'),
  );
  stateMismatch.forEach((row) =>
    note('state differs from last attempt', `${row.id}: ${row.state} after ${row.last_result}`),
  );

  // A delivery may be recorded as delivered only if the receiver sent a
  // 2xx for its webhook-id.
  const answered2xx = new Map<string, number>();
  for (const request of facts.requests) {
    if (request.answered && request.status >= 200 && request.status < 300) {
      answered2xx.set(request.webhookId, (answered2xx.get(request.webhookId) ?? 0) + 1);
    }
  }
  const deliveredUnseen = deliveries.filter(
    (row) => row.state === 'delivered' && !answered2xx.has(row.id),
  );
  deliveredUnseen.forEach((row) => note('delivered without a 2xx at the receiver', row.id));
  const receiverDuplicates = [...answered2xx.values()].filter((count) => count > 1).length;
  const unverified = facts.requests.filter((request) => !request.verified);
  unverified.forEach((request) =>
    note('requests failing the signature check', `${request.webhookId} at /rx/${request.receiver}`),
  );
  facts.fleet.uncleanStops.forEach((text) => note('SIGTERM stops that did not exit 0', text));
  facts.fleet.unexpectedExits.forEach((text) => note('workers that exited by themselves', text));

  const count = (state: string) => deliveries.filter((row) => row.state === state).length;
  const attemptRows = deliveries.reduce((total, row) => total + row.numbers.length, 0);
  const rows: ReportRow[] = [];
  const add = (label: string, value: number | string, failed = false) =>
    rows.push({ label, value: String(value), failed });
  const check = (label: string, value: number) => add(label, value, value > 0);

  add('events planned', facts.events.length);
  add('events published', facts.publishedIds.size);
  add('publish calls that failed', facts.publishErrors);
  add('event rows', events.length);
  check('published events without a row', missingEvents.length);
  check('events never dispatched', undispatched.length);
  add('expected deliveries (from subscriptions)', expected.size);
  add('delivery rows', deliveries.length);
  check('lost: expected delivery without a row', missingRows.length);
  check('lost: delivery never finished', unfinished.length);
  check('unexpected delivery rows', unexpected.length);
  check('duplicate delivery rows', duplicates.length);
  add('deliveries delivered', count('delivered'));
  add('deliveries failed (budget spent)', count('failed'));
  add('attempt rows', attemptRows);
  check('attempt-number gaps or repeats', gaps.length);
  check('attempts column differs from attempt rows', mismatched.length);
  check('state differs from last attempt', stateMismatch.length);
  check('delivered without a 2xx at the receiver', deliveredUnseen.length);
  add('requests at the receiver', facts.requests.length);
  add('webhook-ids answered 2xx more than once (allowed)', receiverDuplicates);
  check('requests failing the signature check', unverified.length);
  add('SIGKILLs sent', facts.fleet.sigkills);
  add('SIGTERMs sent (chaos, not the final stop)', facts.fleet.sigterms);
  add('SIGTERM stops that exited 0 (final stop included)', facts.fleet.cleanStops);
  check('SIGTERM stops that did not exit 0', facts.fleet.uncleanStops.length);
  check('workers that exited by themselves', facts.fleet.unexpectedExits.length);
  add('worker restarts', facts.fleet.restarts);
  add('worker log lines at level error', formatErrorLines(facts.fleet.errorLines));
  add('Redis keys deleted by the flush', facts.flushedKeys);
  add(
    'time to drain after the last kill or flush',
    facts.drainAfterLastDisruptionMs === null
      ? 'did not drain'
      : `${(facts.drainAfterLastDisruptionMs / 1000).toFixed(1)} s`,
    facts.drainAfterLastDisruptionMs === null,
  );
  add('run duration', `${(facts.durationMs / 1000).toFixed(1)} s`);
  return { rows, failed: rows.some((row) => row.failed), examples };
}

function formatErrorLines(lines: FleetStats['errorLines']): string {
  return `dispatch ${lines.dispatch}, delivery ${lines.delivery}`;
}

/** Formats the report as an aligned table, with examples under it for each failed line. */
export function formatReport(report: ChaosReport): string {
  const width = Math.max(...report.rows.map((row) => row.label.length));
  const lines = report.rows.map(
    (row) => `${row.label.padEnd(width)}  ${row.value.padStart(8)}${row.failed ? '  FAIL' : ''}`,
  );
  for (const [label, list] of Object.entries(report.examples)) {
    lines.push('', `${label}, for example:`, ...list.map((example) => `  ${example}`));
  }
  return lines.join('\n');
}

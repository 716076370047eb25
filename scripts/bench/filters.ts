// Measures the dispatch time per event with thousands of payload filters
// next to a baseline without them, in one run on one machine:
//   npm run bench -- --filters [--filter-receivers 0,1,1000,5000] [--events 200] [--rounds 3] [--json FILE]
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import pg from 'pg';
import { migrateDatabase } from '../../shared/db/migrate.js';
import { compilePattern } from '../../shared/event-class.js';
import { createLogger } from '../../shared/logger.js';
import { compileFilter } from '../../shared/payload-filter.js';
import type { DeliveryQueues } from '../../shared/queues.js';
import { dispatchEvent, type DispatchDependencies } from '../../workers/dispatch/dispatch-event.js';
import { loadExampleEvents } from '../demo/examples.js';
import { round } from './stats.js';

export interface FilterBenchOptions {
  /** Numbers of added receivers to measure, where 0 is the baseline. */
  receiverCounts: number[];
  /** Events dispatched per measurement. */
  events: number;
  /** Number of rounds. Each round repeats every measurement with a baseline of its own. */
  rounds: number;
  json?: string;
}

const EVENT_CLASS = 'github.pull_request.opened';
/** Receivers without a filter that get every event, as in a real install. */
const BASELINE_RECEIVERS = 4;
const WARMUP_EVENTS = 20;
const DATABASE = 'webhooks_bench_filters';

/**
 * Placement of the added receivers' subscriptions relative to the measured
 * events. The last one has no filters. It shows what glob subscriptions
 * cost without them, because PostgreSQL matches every glob's regular
 * expression against each event.
 */
type Scenario = 'same class' | 'other classes' | 'other globs' | 'other globs, no filter';
const SCENARIOS: Scenario[] = ['same class', 'other classes', 'other globs', 'other globs, no filter'];

function log(message: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

/** Four filter shapes that the example payload does not match. */
function filterFor(index: number): unknown {
  switch (index % 4) {
    case 0:
      return { path: 'repository.full_name', eq: `other/repo-${index}` };
    case 1:
      return { and: [{ path: 'action', in: ['closed', 'reopened'] }, { path: 'pull_request.additions', gt: 10 }] };
    case 2:
      return { or: [{ path: 'sender.login', eq: `bot-${index}` }, { path: ['pull_request', 'labels', 0, 'name'], eq: 'never' }] };
    default:
      return { not: { path: 'pull_request.number', exists: true } };
  }
}

function patternFor(scenario: Scenario, index: number): string {
  if (scenario === 'same class') return EVENT_CLASS;
  if (scenario === 'other classes') return `other.c${index}.opened`;
  return `other${index}.*`;
}

async function recreateDatabase(serverUrl: URL): Promise<string> {
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  await client.query(`CREATE DATABASE ${DATABASE}`);
  await client.end();
  const databaseUrl = new URL(serverUrl);
  databaseUrl.pathname = `/${DATABASE}`;
  await migrateDatabase(databaseUrl.toString());
  return databaseUrl.toString();
}

/** Inserts receivers with one subscription each, in two statements. */
async function insertReceivers(
  pool: pg.Pool,
  prefix: string,
  subscriptions: { pattern: string; filter: unknown | null }[],
) {
  const ids = subscriptions.map(() => randomUUID());
  await pool.query(
    `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
     SELECT id, $2 || n, 'http://127.0.0.1:9/unused', now(), now()
     FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)`,
    [ids, prefix],
  );
  const compiled = subscriptions.map(({ pattern, filter }) => ({
    pattern: compilePattern(pattern),
    filter: filter === null ? null : compileFilter(filter),
  }));
  await pool.query(
    `INSERT INTO webhook_rx_subscription
       (rx_id, event_class, is_glob, event_class_regex, filter, filter_jsonpath, time_created)
     SELECT rx_id, event_class, is_glob, regex, filter, jsonpath, now()
     FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::text[], $5::jsonb[], $6::text[])
       AS t(rx_id, event_class, is_glob, regex, filter, jsonpath)`,
    [
      ids,
      compiled.map((item) => item.pattern.pattern),
      compiled.map((item) => item.pattern.isGlob),
      compiled.map((item) => item.pattern.regex),
      compiled.map((item) => (item.filter === null ? null : JSON.stringify(item.filter.filter))),
      compiled.map((item) => item.filter?.jsonpath ?? null),
    ],
  );
}

function summarize(milliseconds: number[]) {
  const sorted = [...milliseconds].sort((a, b) => a - b);
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
  const mean = sorted.reduce((total, value) => total + value, 0) / sorted.length;
  return { p50: at(0.5), p95: at(0.95), mean };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Delivery queues that drop every job. The delivery jobs do not depend on
 * filters, because every measured event gets the same deliveries, so leaving
 * Redis out measures the dispatch statement with less noise.
 */
const discardingQueues = {
  forReceiver: () => ({ addBulk: async () => [] }),
} as unknown as DeliveryQueues;

interface Configuration {
  scenario: Scenario | 'baseline';
  receivers: number;
}

/** Runs the filter benchmark and prints its table. The caller exits afterwards. */
export async function runFilterBench(options: FilterBenchOptions): Promise<void> {
  const serverUrl = new URL(process.env.DATABASE_URL ?? 'postgresql://root@127.0.0.1:5432/webhooks');
  const databaseUrl = await recreateDatabase(serverUrl);
  // One connection, so that every dispatch runs alone, as one job does.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  // Waiting for the WAL flush of each commit took longer than the statement
  // itself on the shared test machine, and varied more. Filters cost CPU in
  // the statement, so the session skips that wait to measure it.
  pool.on('connect', (client) => {
    client.query('SET synchronous_commit TO off').catch(() => {});
  });
  const deps: DispatchDependencies = {
    pool,
    deliveryQueues: discardingQueues,
    logger: createLogger('bench', 'warn'),
  };

  const example = loadExampleEvents().find((event) => event.eventClass === EVENT_CLASS);
  if (!example) throw new Error(`@octokit/webhooks-examples has no ${EVENT_CLASS} payload`);
  const dataJson = JSON.stringify(example.data);
  for (let index = 0; index < 4; index++) {
    if (compileFilter(filterFor(index)).matches(example.data)) {
      throw new Error(`filter shape ${index} matches the example payload; every filtered receiver must miss it`);
    }
  }

  await insertReceivers(
    pool,
    'bench-plain-',
    Array.from({ length: BASELINE_RECEIVERS }, () => ({ pattern: EVENT_CLASS, filter: null })),
  );

  /** Dispatches fresh events one at a time and returns the time of each, in ms. */
  const measure = async () => {
    await pool.query('TRUNCATE webhook_event CASCADE');
    // The receivers of the previous measurement were deleted, and their dead
    // rows would slow down the index scans of this one without a vacuum.
    await pool.query('VACUUM ANALYZE webhook_rx, webhook_rx_subscription');
    const { rows } = await pool.query<{ id: string }>(
      `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
       SELECT gen_random_uuid(), $1, $2, now(), now() FROM generate_series(1, $3)
       RETURNING id::text`,
      [EVENT_CLASS, dataJson, WARMUP_EVENTS + options.events],
    );
    const times: number[] = [];
    for (const [index, { id }] of rows.entries()) {
      const started = performance.now();
      const outcome = await dispatchEvent(deps, id);
      const elapsed = performance.now() - started;
      if (outcome.kind !== 'dispatched' || outcome.numDispatched !== BASELINE_RECEIVERS) {
        throw new Error(`event ${id} was dispatched as ${JSON.stringify(outcome)}, expected ${BASELINE_RECEIVERS} receivers`);
      }
      if (index >= WARMUP_EVENTS) times.push(elapsed);
    }
    return summarize(times);
  };

  const configurations: Configuration[] = [{ scenario: 'baseline', receivers: 0 }];
  for (const scenario of SCENARIOS) {
    for (const receivers of options.receiverCounts.filter((count) => count > 0)) {
      configurations.push({ scenario, receivers });
    }
  }
  // Each round measures every configuration once, with the baseline at its
  // start and at its end, so that a machine that gets slower or faster
  // during the run moves the baseline as much as the rest.
  const results = configurations.map(() => ({ p50: [] as number[], p95: [] as number[] }));
  for (let round = 1; round <= options.rounds; round++) {
    for (const [index, configuration] of [...configurations, configurations[0]!].entries()) {
      await pool.query(`DELETE FROM webhook_rx WHERE name LIKE 'bench-filter-%'`);
      if (configuration.scenario !== 'baseline') {
        const scenario = configuration.scenario;
        await insertReceivers(
          pool,
          'bench-filter-',
          Array.from({ length: configuration.receivers }, (_, receiver) => ({
            pattern: patternFor(scenario, receiver),
            filter: scenario === 'other globs, no filter' ? null : filterFor(receiver),
          })),
        );
      }
      log(`round ${round}: ${configuration.scenario}, ${configuration.receivers} added receivers`);
      const summary = await measure();
      const result = results[index % configurations.length]!;
      result.p50.push(summary.p50);
      result.p95.push(summary.p95);
    }
  }

  const baselineP50 = median(results[0]!.p50);
  const rows = configurations.map((configuration, index) => ({
    scenario: configuration.scenario,
    receivers: configuration.receivers,
    p50_ms: round(median(results[index]!.p50), 3),
    p95_ms: round(median(results[index]!.p95), 3),
    p50_ratio_to_baseline: round(median(results[index]!.p50) / baselineP50, 2),
  }));
  console.log(
    `\nDispatch time per event in ms: the median over ${options.rounds} rounds (twice that for the baseline) of each round's p50 and p95 of ${options.events} events. ` +
      `${BASELINE_RECEIVERS} unfiltered receivers get every event; no filtered receiver matches it. Commits do not wait for the WAL flush.`,
  );
  console.log('\n| added receivers | where they subscribe | p50 | p95 | p50 ratio to baseline |');
  console.log('|---:|---|---:|---:|---:|');
  for (const row of rows) {
    console.log(`| ${row.receivers} | ${row.scenario} | ${row.p50_ms} | ${row.p95_ms} | ${row.p50_ratio_to_baseline} |`);
  }
  const machine = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version };
  const payloadBytes = Buffer.byteLength(dataJson);
  console.log(`\nPayload: the ${EVENT_CLASS} example, ${payloadBytes} bytes. Machine: ${machine.cpus} × ${machine.cpu_model}, Node ${machine.node}`);
  if (options.json) {
    writeFileSync(
      options.json,
      `${JSON.stringify({ machine, payload_bytes: payloadBytes, events: options.events, rounds: options.rounds, rows }, null, 2)}\n`,
    );
  }
  await pool.end();
}

// Runs the whole pipeline on this machine with real GitHub webhook payloads.
// This process starts the API, a dispatch worker, a delivery worker and two
// local receivers that verify every request with the `standardwebhooks`
// package. It then publishes every example of `@octokit/webhooks-examples`
// through the HTTP API, prints a table read from PostgreSQL, and exits 1
// when any delivery is missing, duplicated, not delivered or not verified.
//
// Reruns stay clean because each run owns its data. The demo uses the
// database named in DATABASE_URL with `_demo` appended (`webhooks_demo` by
// default), drops and creates it at start, and leaves it for inspection.
// Its BullMQ keys use a prefix with a random run id and are deleted at the
// end. The demo never writes to the DATABASE_URL database itself.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startApi } from '../producers/api/start-api.js';
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { migrateDatabase } from '../shared/db/migrate.js';
import { createLogger } from '../shared/logger.js';
import { startDeliveryWorker } from '../workers/delivery/delivery-worker.js';
import { startDispatchWorker } from '../workers/dispatch/dispatch-worker.js';
import { createClient } from '../producers/api/contract/client.js';
import { publishAll, type PublishSummary } from './demo/api-client.js';
import { loadExampleEvents, matchesSubscription, type DemoEvent } from './demo/examples.js';
import {
  checkPostgres,
  checkQueueRedis,
  databaseName,
  deleteQueueKeys,
  recreateDatabase,
  redactUrl,
  reportUnreachable,
  withDatabase,
} from './demo/preflight.js';
import { failFirstTries, VerifyingReceiver } from './demo/receiver.js';
import {
  findProblems,
  formatTable,
  readProgress,
  readResults,
  type DemoReceiver,
  type Progress,
} from './demo/report.js';

/** Events in flight at once against POST /v1/events. */
const PUBLISH_CONCURRENCY = 16;
/** Limit of each request that the demo sends to its own API. */
const API_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 120_000;
const POLL_INTERVAL_MS = 250;
/** How often the progress line is printed when stdout is not a terminal. */
const LOG_PROGRESS_EVERY_MS = 2_000;

/** The receivers that the demo registers, with their subscriptions. */
const RECEIVER_PLANS = [
  {
    name: 'demo-verifier',
    description: 'Responds 200 to every request whose signature verifies.',
    subscriptions: ['github.**'],
    failurePlan: () => 0,
  },
  {
    name: 'demo-flaky',
    description: 'Fails the first try of every delivery, and the second of about a third.',
    subscriptions: ['github.issues.*', 'github.pull_request.*', 'github.push'],
    failurePlan: failFirstTries,
  },
];

/** Reads a whole number of milliseconds from the environment. */
function readMilliseconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `must be a whole number of milliseconds, got "${raw}"`);
  }
  return Number(raw.trim());
}

/**
 * Loads the configuration with the demo's settings on top of the
 * environment: a short retry schedule, loopback receivers allowed, a free
 * API port, quiet logs, and its own database and BullMQ prefix.
 */
function loadDemoConfig(runId: string): Config {
  const overrides: Record<string, string> = {
    QUEUE_PREFIX: `whk-demo-${runId}`,
    RETRY_SCHEDULE_MS: '500,1000,2000',
    ALLOWED_PRIVATE_NETWORKS: '127.0.0.0/8',
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    CONNECT_TIMEOUT_MS: '2000',
    ATTEMPT_TIMEOUT_MS: '5000',
    LOG_LEVEL: 'warn',
  };
  const base = loadConfig({ ...process.env, ...overrides });
  const demoDatabase = `${databaseName(base.databaseUrl)}_demo`;
  return loadConfig({
    ...process.env,
    ...overrides,
    DATABASE_URL: withDatabase(base.databaseUrl, demoDatabase),
  });
}

/** Prints the progress line: in place on a terminal, as log lines otherwise. */
class ProgressPrinter {
  private lastLoggedAt = 0;
  private readonly interactive = process.stdout.isTTY === true;

  constructor(
    private readonly totalEvents: number,
    private readonly expectedDeliveries: number,
  ) {}

  update(published: number, progress: Progress, elapsedMs: number, final = false): void {
    const failed = progress.failed > 0 ? `  failed ${progress.failed}` : '';
    const text =
      `published ${published}/${this.totalEvents}` +
      `  delivered ${progress.delivered}/${this.expectedDeliveries}` +
      `  pending ${progress.pending}${failed}` +
      `  attempts ${progress.attempts}` +
      `  ${(elapsedMs / 1000).toFixed(1)} s`;
    if (this.interactive) {
      process.stdout.write(`\r\x1b[2K${text}${final ? '\n' : ''}`);
    } else if (final || Date.now() - this.lastLoggedAt >= LOG_PROGRESS_EVERY_MS) {
      this.lastLoggedAt = Date.now();
      process.stdout.write(`${text}\n`);
    }
  }
}

/** Returns each receiver's expected event ids, from the demo's own glob matcher. */
function expectedEventIds(events: readonly DemoEvent[], subscriptions: readonly string[]) {
  const subscribed = (event: DemoEvent) =>
    subscriptions.some((pattern) => matchesSubscription(pattern, event.eventClass));
  return new Set(events.filter(subscribed).map((event) => event.id));
}

/** Waits `ms`, or less when `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs the demo and returns the process exit code. */
async function runDemo(): Promise<number> {
  const runId = randomBytes(4).toString('hex');
  let config: Config;
  let timeoutMs: number;
  let holdMs: number;
  try {
    config = loadDemoConfig(runId);
    timeoutMs = readMilliseconds('DEMO_TIMEOUT_MS', DEFAULT_TIMEOUT_MS);
    holdMs = readMilliseconds('DEMO_HOLD_MS', 0);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`invalid configuration: ${error.message}`);
      return 2;
    }
    throw error;
  }

  if (!(await reportUnreachable([checkPostgres(config.databaseUrl), checkQueueRedis(config)]))) {
    return 1;
  }

  // The first SIGINT or SIGTERM stops waiting and cleans up, and a second exits at once.
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) process.exit(130);
    console.error(`\n${signal} received; stopping the demo (send it again to exit at once)`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    return await runPipeline(config, { timeoutMs, holdMs, signal: interrupt.signal }, cleanups);
  } finally {
    // Closes in reverse start order: the API stops taking events before the
    // workers drain, the receivers stay up until the workers have stopped,
    // and the BullMQ keys go last.
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error(`error while stopping the demo: ${String(error)}`);
      }
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Recreates the demo database, starts every component, publishes the events,
 * waits for their deliveries and prints the report. Each component's close
 * function goes onto `cleanups` as soon as it starts.
 */
async function runPipeline(
  config: Config,
  options: { timeoutMs: number; holdMs: number; signal: AbortSignal },
  cleanups: (() => Promise<unknown>)[],
): Promise<number> {
  const demoDatabase = databaseName(config.databaseUrl);
  cleanups.push(() => deleteQueueKeys(config));
  await recreateDatabase(config.databaseUrl);
  await migrateDatabase(config.databaseUrl);
  console.log(`database ${demoDatabase} created and migrated (${redactUrl(config.databaseUrl)})`);

  const receivers: VerifyingReceiver[] = [];
  for (const plan of RECEIVER_PLANS) {
    const receiver = new VerifyingReceiver(plan.name, plan.failurePlan);
    await receiver.start();
    cleanups.push(() => receiver.stop());
    receivers.push(receiver);
  }

  const logger = createLogger('demo', config.logLevel);
  const delivery = startDeliveryWorker(config, logger.child({ component: 'delivery' }));
  cleanups.push(() => delivery.close());
  const dispatch = startDispatchWorker(config, logger.child({ component: 'dispatch' }));
  cleanups.push(() => dispatch.close());
  const api = await startApi(config, logger.child({ component: 'api' }));
  cleanups.push(() => api.close());
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 2 });
  cleanups.push(() => pool.end());

  console.log(`API        ${api.url}`);
  console.log(`Bull Board ${api.url}${config.bullBoardPath}`);
  console.log(`BullMQ key prefix ${config.queuePrefix}, retry schedule ${config.retryScheduleMs.join(', ')} ms`);

  const events = loadExampleEvents();
  const client = createClient({
    baseUrl: api.url,
    token: config.apiToken === '' ? undefined : config.apiToken,
    timeoutMs: API_REQUEST_TIMEOUT_MS,
  });
  const demoReceivers: DemoReceiver[] = [];
  for (const [index, plan] of RECEIVER_PLANS.entries()) {
    const server = receivers[index]!;
    const created = await client.createReceiver({
      body: {
        name: plan.name,
        description: plan.description,
        endpoint: server.url,
        subscriptions: plan.subscriptions,
      },
    });
    server.useSecret(created.secret);
    const expected = expectedEventIds(events, plan.subscriptions);
    demoReceivers.push({
      id: created.id,
      subscriptions: plan.subscriptions,
      server,
      expectedEventIds: expected,
    });
    console.log(
      `receiver ${plan.name} at ${server.url} subscribes to ${plan.subscriptions.join(', ')}: expects ${expected.size} deliveries`,
    );
  }
  const expectedDeliveries = demoReceivers.reduce(
    (total, receiver) => total + receiver.expectedEventIds.size,
    0,
  );
  const eventClasses = new Set(events.map((event) => event.eventClass)).size;
  console.log(`publishing ${events.length} example payloads in ${eventClasses} event classes, ${PUBLISH_CONCURRENCY} at a time`);

  const started = performance.now();
  const deadline = Date.now() + options.timeoutMs;
  let published = 0;
  let publishSummary: PublishSummary | undefined;
  const publishing = publishAll(client, events, PUBLISH_CONCURRENCY, () => published++, options.signal)
    .then((summary) => {
      publishSummary = summary;
    });
  publishing.catch(() => {});

  const printer = new ProgressPrinter(events.length, expectedDeliveries);
  let progress = await readProgress(pool);
  let timedOut = false;
  for (;;) {
    // Dispatch creates an event's deliveries in the transaction that sets
    // time_dispatched, so no undispatched events and no pending deliveries
    // means that nothing is left to do.
    const finished =
      publishSummary !== undefined &&
      progress.events >= publishSummary.accepted &&
      progress.undispatchedEvents === 0 &&
      progress.pending === 0;
    if (finished || options.signal.aborted) break;
    if (Date.now() > deadline) {
      timedOut = true;
      break;
    }
    printer.update(published, progress, performance.now() - started);
    await sleep(POLL_INTERVAL_MS, options.signal);
    progress = await readProgress(pool);
  }
  const elapsedMs = performance.now() - started;
  await publishing;
  progress = await readProgress(pool);
  printer.update(published, progress, elapsedMs, true);

  const results = await readResults(pool);
  // After an interrupt every unfinished delivery would be listed as a
  // problem, so the demo reports the interrupt alone.
  const problems = options.signal.aborted
    ? ['interrupted before every delivery finished']
    : findProblems({
        events,
        receivers: demoReceivers,
        published: publishSummary ?? { accepted: published, rejected: [] },
        results,
      });
  if (timedOut) {
    problems.unshift(
      `timed out after ${options.timeoutMs / 1000} s with ${progress.pending} deliveries pending and ${progress.undispatchedEvents} events undispatched`,
    );
  }

  const delivered = [...results.countsByReceiver.values()].reduce(
    (total, counts) => total + (counts.states.get('delivered') ?? 0),
    0,
  );
  const seconds = elapsedMs / 1000;
  console.log('');
  console.log(formatTable({ receivers: demoReceivers, results }));
  console.log('');
  console.log(`events published         ${published} of ${events.length} (${eventClasses} event classes)`);
  console.log(`time taken               ${seconds.toFixed(1)} s`);
  console.log(`deliveries per second    ${(delivered / seconds).toFixed(1)}`);
  console.log('');

  if (problems.length > 0) {
    console.error('demo FAILED:');
    for (const problem of problems) console.error(`  - ${problem}`);
  } else {
    console.log(
      `demo passed: ${delivered} deliveries of ${published} events, each delivered once and verified by its receiver with standardwebhooks`,
    );
  }
  console.log(`the ${demoDatabase} database stays for inspection; the next run recreates it`);

  if (options.holdMs > 0 && !options.signal.aborted) {
    console.log(`holding for ${options.holdMs} ms (DEMO_HOLD_MS); Bull Board is at ${api.url}${config.bullBoardPath}`);
    await sleep(options.holdMs, options.signal);
  }
  if (problems.length === 0) return 0;
  return options.signal.aborted ? 130 : 1;
}

try {
  process.exitCode = await runDemo();
} catch (error) {
  console.error(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
}

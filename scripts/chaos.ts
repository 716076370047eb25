// Runs the whole system under chaos and checks that nothing was lost or
// duplicated. It starts several dispatch and delivery worker processes and
// a verifying loopback receiver that plays many receivers, some flaky and
// some slow. It publishes thousands of events through the library
// Publisher while it sends random SIGKILLs and SIGTERMs to workers (each is
// restarted) and flushes this run's Redis keys once, half-way. At the end it prints a table read from
// PostgreSQL and the receiver's log, and exits 1 when any guarantee broke.
//
// It uses the database named in DATABASE_URL with `_chaos` appended
// (`webhooks_chaos` by default), dropped and created at start and kept for
// inspection, and BullMQ keys under a prefix of its own, deleted at the end.
// The flush deletes only those keys (SCAN and DEL), never the whole Redis.
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../shared/config.js';
import { migrateDatabase } from '../shared/db/migrate.js';
import { parseChaosOptions, USAGE, UsageError, type ChaosOptions } from './chaos/options.js';
import { planDisruptions } from './chaos/plan.js';
import { SeededRandom } from './chaos/random.js';
import { formatReport } from './chaos/report.js';
import { CHAOS_WORKER_SETTINGS, deleteQueueKeys, runChaos } from './chaos/run.js';
import { killAllWorkers } from './chaos/worker-process.js';
import {
  checkPostgres,
  checkRedis,
  databaseName,
  recreateDatabase,
  redactUrl,
  reportUnreachable,
  withDatabase,
} from './demo/preflight.js';

async function main(): Promise<number> {
  let options: ChaosOptions | null;
  try {
    options = parseChaosOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    return 2;
  }
  if (options === null) {
    console.log(USAGE);
    return 0;
  }
  const runId = randomBytes(4).toString('hex');
  let base;
  try {
    base = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`invalid configuration: ${error.message}`);
    return 2;
  }
  const databaseUrl = withDatabase(base.databaseUrl, `${databaseName(base.databaseUrl)}_chaos`);
  const queuePrefix = `whk-chaos-${runId}`;
  if (!(await reportUnreachable([checkPostgres(databaseUrl), checkRedis(base.redisUrl)]))) {
    return 1;
  }

  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) {
      killAllWorkers();
      process.exit(130);
    }
    console.error(`\n${signal} received; stopping the workers (send it again to kill them at once)`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  await recreateDatabase(databaseUrl);
  await migrateDatabase(databaseUrl);
  const logDirectory = path.join(tmpdir(), `webhook-chaos-${runId}`);
  mkdirSync(logDirectory, { recursive: true });
  const logPath = path.join(logDirectory, 'workers.log');
  const logStream = createWriteStream(logPath);
  const publishMs = Math.ceil((options.events * 1000) / options.rate);
  const disruptions = planDisruptions(
    publishMs + options.chaosAfterPublishMs,
    options.killIntervalMs,
    new SeededRandom(options.seed + 2),
  );
  const stamp = () => new Date().toISOString().slice(11, 19);
  console.log(`database ${databaseName(databaseUrl)} (${redactUrl(databaseUrl)}), BullMQ key prefix ${queuePrefix}`);
  console.log(`worker logs in ${logPath}`);
  console.log(
    `seed ${options.seed}: ${options.events} events at ${options.rate}/s to ${options.receivers} receivers, ` +
      `${options.dispatchWorkers} dispatch and ${options.deliveryWorkers} delivery workers, ` +
      `${disruptions.length - 1} kills and 1 flush over ${((publishMs + options.chaosAfterPublishMs) / 1000).toFixed(0)} s`,
  );
  console.log(
    `worker settings: ${Object.entries(CHAOS_WORKER_SETTINGS)
      .filter(([name]) => name !== 'LOG_LEVEL' && name !== 'ALLOWED_PRIVATE_NETWORKS')
      .map(([name, value]) => `${name}=${value}`)
      .join(' ')}`,
  );

  try {
    const report = await runChaos({
      databaseUrl,
      redisUrl: base.redisUrl,
      queuePrefix,
      events: options.events,
      receivers: options.receivers,
      workers: { dispatch: options.dispatchWorkers, delivery: options.deliveryWorkers },
      publishRate: options.rate,
      disruptions,
      drainTimeoutMs: options.drainTimeoutMs,
      seed: options.seed,
      writeLog: (text) => logStream.write(text),
      onProgress: (text) => console.log(`${stamp()} ${text}`),
      signal: interrupt.signal,
    });
    console.log(`\n${formatReport(report)}\n`);
    console.log(report.failed ? 'FAILED: a guarantee broke (lines marked FAIL)' : 'passed: nothing lost or duplicated');
    return report.failed ? 1 : 0;
  } catch (error) {
    if (interrupt.signal.aborted) return 130;
    throw error;
  } finally {
    await new Promise((resolve) => logStream.end(resolve));
    const config = loadConfig({ ...process.env, DATABASE_URL: databaseUrl, QUEUE_PREFIX: queuePrefix });
    await deleteQueueKeys(config).catch((error: unknown) => {
      console.error(`could not delete the run's Redis keys: ${String(error)}`);
    });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    killAllWorkers();
    process.exit(1);
  },
);

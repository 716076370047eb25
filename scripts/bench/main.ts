// Measures deliveries per second and event-to-first-attempt latency of the
// whole system, next to ceilings of its parts measured in the same run:
//   npm run bench -- [--sizes 1000,10000,100000] [--json FILE]
// `--filters [--filter-receivers 0,1,1000,5000] [--events 200] [--rounds 3]`
// measures dispatch with payload filters instead; see filters.ts.
// `--ordered` makes every receiver ordered, so that each gets one request at
// a time. Pass small --sizes with it, such as 1000.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig } from '../../shared/config.js';
import { createPrismaClient } from '../../shared/db/client.js';
import { migrateDatabase } from '../../shared/db/migrate.js';
import { createLogger } from '../../shared/logger.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import { openQueues, producerConnection } from '../../shared/queues.js';
import { Publisher } from '../../producers/publish.js';
import { ReceiverService } from '../../producers/receivers.js';
import { measureBullmqCeiling, measureGotCeiling, measurePrismaBulkCeiling } from './ceilings.js';
import { runFilterBench } from './filters.js';
import { RoleProcess } from './processes.js';
import { BenchSink } from './sink.js';
import { percentiles, round } from './stats.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,10000,100000' },
    json: { type: 'string' },
    receivers: { type: 'string', default: '4' },
    ordered: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '50' },
    'delivery-processes': { type: 'string', default: '1' },
    filters: { type: 'boolean', default: false },
    'filter-receivers': { type: 'string', default: '0,1,1000,5000' },
    events: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
  },
});
if (values.filters) {
  const receiverCounts = values['filter-receivers']!.split(',').map(Number);
  const events = Number(values.events);
  const rounds = Number(values.rounds);
  if (
    receiverCounts.some((count) => !Number.isInteger(count) || count < 0) ||
    ![events, rounds].every((value) => Number.isInteger(value) && value >= 1)
  ) {
    console.error('--filter-receivers must be whole numbers of at least 0; --events and --rounds whole numbers of at least 1');
    process.exit(2);
  }
  await runFilterBench({ receiverCounts, events, rounds, json: values.json });
  process.exit(0);
}
const sizes = values.sizes!.split(',').map(Number);
const receiverCount = Number(values.receivers);
const concurrency = Number(values.concurrency);
if (sizes.some((size) => !Number.isInteger(size) || size < receiverCount) || !(receiverCount >= 1) || !(concurrency >= 1)) {
  console.error('--sizes must be whole numbers of deliveries, each at least --receivers; --receivers and --concurrency must be at least 1');
  process.exit(2);
}

const serverUrl = new URL(process.env.DATABASE_URL ?? 'postgresql://root@127.0.0.1:5432/webhooks');
const databaseUrl = new URL(serverUrl);
databaseUrl.pathname = '/webhooks_bench';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const queuePrefix = `whk-bench-${randomUUID().slice(0, 8)}`;
const examplePayload = {
  action: 'opened',
  number: 1347,
  repository: { id: 1296269, full_name: 'octocat/Hello-World', private: false },
  sender: { login: 'octocat', id: 1, type: 'User' },
  pull_request: { title: 'Amazing new feature', body: 'Please pull these awesome changes in!', state: 'open' },
};

async function recreateDatabase() {
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  await client.query('DROP DATABASE IF EXISTS webhooks_bench WITH (FORCE)');
  await client.query('CREATE DATABASE webhooks_bench');
  await client.end();
  await migrateDatabase(databaseUrl.toString());
}

function log(message: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

await recreateDatabase();
const sink = new BenchSink();
const sinkUrl = await sink.start();
const prisma = createPrismaClient({ databaseUrl: databaseUrl.toString(), poolMax: 8, applicationName: 'webhook-bench' });
const pool = new pg.Pool({ connectionString: databaseUrl.toString(), max: 2 });
const body = JSON.stringify({ event_class: 'bench.ping', event_id: randomUUID(), delivery_id: randomUUID(), timestamp: new Date().toISOString(), data: examplePayload });

log('measuring ceilings');
const gotCeiling = await measureGotCeiling({ url: sinkUrl, body, count: 20_000, concurrency });
const bullmqCeiling = await measureBullmqCeiling({ redisUrl, count: 20_000, concurrency });
const prismaCeiling = await measurePrismaBulkCeiling(prisma, 20_000);
log(`got ${round(gotCeiling)}/s, bullmq ${round(bullmqCeiling)}/s, prisma createMany ${round(prismaCeiling)} rows/s`);

const roleEnv = {
  DATABASE_URL: databaseUrl.toString(),
  REDIS_URL: redisUrl,
  // The ceilings and the memory scan use REDIS_URL, so the roles do too.
  REDIS_CLUSTER_NODES: '',
  QUEUE_PREFIX: queuePrefix,
  ALLOWED_PRIVATE_NETWORKS: '127.0.0.0/8',
  LOG_LEVEL: 'warn',
  DELIVERY_CONCURRENCY: String(concurrency),
  SWEEP_INTERVAL_MS: '5000',
  SWEEP_GRACE_MS: '30000',
};
const apiPort = String(20_000 + Math.floor(Math.random() * 20_000));
// BENCH_CPU_PROF=1 writes a V8 CPU profile of each role to bench-profiles/.
const profileArgs = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir=bench-profiles'] : [];
const api = new RoleProcess('producers/api/main.ts', { ...roleEnv, API_PORT: apiPort }, profileArgs).start();
const dispatch = new RoleProcess('workers/dispatch/main.ts', roleEnv, profileArgs).start();
let delivery = new RoleProcess('workers/delivery/main.ts', roleEnv, profileArgs).start();
// More delivery processes show how throughput scales; RSS is read from the
// first one.
const extraDeliveryProcesses = Array.from(
  { length: Math.max(0, Number(values['delivery-processes']) - 1) },
  () => new RoleProcess('workers/delivery/main.ts', roleEnv, profileArgs).start(),
);

const logger = createLogger('bench', 'warn');
// The roles' settings, DELIVERY_QUEUE_SHARDS included, so that the bench
// reads the same delivery queues as they do.
const roleConfig = loadConfig({ ...process.env, ...roleEnv });
const producerRedis = producerConnection(roleConfig);
const queues = openQueues(producerRedis, roleConfig);
const publisher = new Publisher({ prisma, dispatchQueue: queues.dispatch, logger, maxPayloadBytes: 262_144 });
const receivers = new ReceiverService(prisma, new NetworkGuard(['127.0.0.0/8']));
for (let index = 0; index < receiverCount; index++) {
  await receivers.create({
    name: `bench-${index}`,
    endpoint: sinkUrl,
    subscriptions: ['bench.*'],
    ordered: values.ordered,
  });
}
await waitForApi(`http://127.0.0.1:${apiPort}/health`);

async function waitForApi(url: string) {
  for (let tries = 0; tries < 200; tries++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`API at ${url} did not become healthy`);
}

async function publishViaApi(eventClass: string): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${apiPort}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ event_class: eventClass, data: examplePayload }),
  });
  if (response.status !== 202) throw new Error(`POST /v1/events answered ${response.status}: ${await response.text()}`);
}

async function countDelivered(): Promise<number> {
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM webhook_delivery WHERE state = 'delivered'`);
  return rows[0].n;
}

async function runSize(size: number) {
  await pool.query('TRUNCATE webhook_event CASCADE');
  const rssAtStartMb = delivery.rssMb();
  sink.firstArrivalByEvent.clear();
  const events = size / receiverCount;
  const started = performance.now();
  let next = 0;
  // Half the events go through the library and half through the HTTP API.
  const lane = async () => {
    while (next < events) {
      const index = next++;
      if (index % 2 === 0) await publisher.publishEvent({ eventClass: 'bench.ping', data: examplePayload });
      else await publishViaApi('bench.ping');
    }
  };
  await Promise.all(Array.from({ length: 32 }, lane));
  for (;;) {
    const delivered = await countDelivered();
    if (delivered >= size) break;
    log(`size ${size}: ${delivered} delivered`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const seconds = (performance.now() - started) / 1000;
  const { rows } = await pool.query(`SELECT id::text, (extract(epoch FROM time_created) * 1000)::float8 AS created_ms FROM webhook_event`);
  const latencies = rows
    .map((row) => (sink.firstArrivalByEvent.get(row.id) ?? Number.NaN) - row.created_ms)
    .filter((value) => Number.isFinite(value));
  return {
    size,
    seconds,
    deliveriesPerSecond: size / seconds,
    loadedLatency: percentiles(latencies),
    rssAtStartMb,
    rssAtEndMb: delivery.rssMb(),
    peakRssMb: delivery.peakRssMb(),
  };
}

async function measureIdleLatency(samples: number) {
  const latencies: number[] = [];
  for (let index = 0; index < samples; index++) {
    const result = await publisher.publishEvent({ eventClass: 'bench.idle', data: examplePayload });
    const created = result.timeCreated.getTime();
    for (;;) {
      const arrived = sink.firstArrivalByEvent.get(result.id);
      if (arrived !== undefined) {
        latencies.push(arrived - created);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return percentiles(latencies);
}

async function measureRedisBytesPerDelayedDelivery(count: number) {
  // Every attempt fails and the first retry waits an hour, so each delivery
  // parks one delayed job in Redis.
  await Promise.all([delivery.stop(), ...extraDeliveryProcesses.map((role) => role.stop())]);
  delivery = new RoleProcess('workers/delivery/main.ts', { ...roleEnv, RETRY_SCHEDULE_MS: '3600000' }).start();
  await pool.query('TRUNCATE webhook_event CASCADE');
  const redis = new Redis(redisUrl);
  const before = await prefixBytes(redis);
  sink.answerWith(500);
  const events = count / receiverCount;
  for (let index = 0; index < events; index += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, events - index) }, () =>
        publisher.publishEvent({ eventClass: 'bench.parked', data: examplePayload }),
      ),
    );
  }
  for (;;) {
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM webhook_delivery WHERE attempts = 1`);
    if (rows[0].n >= count) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const delayedCounts = await Promise.all(
    queues.delivery.shards.map((queue) => queue.getDelayedCount()),
  );
  const delayed = delayedCounts.reduce((total, count) => total + count, 0);
  const after = await prefixBytes(redis);
  sink.answerWith(200);
  redis.disconnect();
  return { delayed, bytesPerDelayed: (after - before) / Math.max(1, delayed) };
}

async function prefixBytes(redis: Redis): Promise<number> {
  let total = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix}:*`, 'COUNT', 1000);
    for (const key of keys) total += (await redis.memory('USAGE', key)) ?? 0;
    cursor = next;
  } while (cursor !== '0');
  return total;
}

const runs = [];
for (const size of sizes) {
  log(`running ${size} deliveries`);
  runs.push(await runSize(size));
}
log('measuring idle latency');
const idleLatency = await measureIdleLatency(50);
const peakRssMb = delivery.peakRssMb();
log('measuring Redis memory of delayed deliveries');
const parked = await measureRedisBytesPerDelayedDelivery(10_000);

const largest = runs[runs.length - 1]!;
const results = {
  machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version },
  receivers: receiverCount,
  ordered_receivers: values.ordered,
  delivery_processes: 1 + extraDeliveryProcesses.length,
  concurrency,
  deliveries: largest.size,
  deliveries_per_s: round(largest.deliveriesPerSecond),
  got_ceiling_per_s: round(gotCeiling),
  ratio_to_got: round(largest.deliveriesPerSecond / gotCeiling, 3),
  bullmq_ceiling_per_s: round(bullmqCeiling),
  prisma_create_many_rows_per_s: round(prismaCeiling),
  idle_latency_ms: idleLatency,
  loaded_latency_ms: largest.loadedLatency,
  peak_rss_mb: peakRssMb === null ? null : round(peakRssMb),
  redis_bytes_per_delayed_delivery: round(parked.bytesPerDelayed),
  delayed_jobs_measured: parked.delayed,
  sizes: runs.map((run) => ({
    deliveries: run.size,
    seconds: round(run.seconds, 2),
    deliveries_per_s: round(run.deliveriesPerSecond),
    ratio_to_got: round(run.deliveriesPerSecond / gotCeiling, 3),
    loaded_latency_ms: run.loadedLatency,
    delivery_rss_mb: { start: run.rssAtStartMb, end: run.rssAtEndMb, peak_so_far: run.peakRssMb },
  })),
};

console.log('\n| deliveries | seconds | deliveries/s | ratio to got | latency p50 / p95 / p99 ms | delivery RSS start → end MB |');
console.log('|---:|---:|---:|---:|---|---|');
for (const run of results.sizes) {
  const l = run.loaded_latency_ms;
  const rss = run.delivery_rss_mb;
  console.log(`| ${run.deliveries} | ${run.seconds} | ${run.deliveries_per_s} | ${run.ratio_to_got} | ${round(l.p50)} / ${round(l.p95)} / ${round(l.p99)} | ${round(rss.start ?? NaN)} → ${round(rss.end ?? NaN)} |`);
}
console.log('\n| measure | value |');
console.log('|---|---:|');
console.log(`| got ceiling, requests/s (concurrency ${concurrency}) | ${results.got_ceiling_per_s} |`);
console.log(`| BullMQ no-op ceiling, jobs/s | ${results.bullmq_ceiling_per_s} |`);
console.log(`| Prisma createMany ceiling, rows/s | ${results.prisma_create_many_rows_per_s} |`);
console.log(`| idle latency p50 / p95 / p99, ms | ${round(idleLatency.p50)} / ${round(idleLatency.p95)} / ${round(idleLatency.p99)} |`);
console.log(`| delivery worker peak RSS, MB | ${results.peak_rss_mb} |`);
console.log(`| Redis bytes per delayed delivery (${parked.delayed} delayed) | ${results.redis_bytes_per_delayed_delivery} |`);
console.log(`| machine | ${results.machine.cpus} × ${results.machine.cpu_model}, Node ${results.machine.node} |`);
if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);

await Promise.all([api.stop(), dispatch.stop(), delivery.stop()]);
await queues.dispatch.obliterate({ force: true }).catch(() => {});
for (const queue of queues.delivery.shards) {
  await queue.obliterate({ force: true }).catch(() => {});
}
await queues.dispatch.close();
await queues.delivery.close();
producerRedis.disconnect();
await sink.stop();
await prisma.$disconnect();
await pool.end();

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPrismaClient } from '../../shared/db/client.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import { ReceiverService } from '../../producers/receivers.js';
import {
  startDeliveryWorker,
  type DeliveryWorkerHandle,
} from '../../workers/delivery/delivery-worker.js';
import { captureLogs, type LogRecord } from '../helpers/log-capture.js';
import { BackendSampler, databaseName, withApplicationName } from '../helpers/pg-activity.js';
import { ScriptedReceiver } from '../helpers/scripted-receiver.js';
import { createReceiver, publishEvent } from '../helpers/system-fixture.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

// A delivery worker with 20 jobs in flight and a pool of 3 connections
// loses PostgreSQL for 10 s under load: a proxy between the worker and
// PostgreSQL closes every connection and refuses new ones, then lets them
// through again. The API and the dispatch worker reach PostgreSQL directly.
const EVENTS = 300;
const CONCURRENCY = 20;
const POOL_MAX = 3;
const OUTAGE_MS = 10_000;
const APPLICATION_NAME = 'whk-outage-delivery';

let env: TestEnv;
let system: RunningSystem;
let receiver: ScriptedReceiver;
let proxy: TcpProxy;
let worker: DeliveryWorkerHandle | undefined;
let sampler: BackendSampler;
const logs = captureLogs('info');

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { delivery: false, overrides: { DATABASE_POOL_MAX: '2' } });
  receiver = await new ScriptedReceiver((_request, response) => {
    setTimeout(() => response.writeHead(200).end('ok'), 50);
  }).start();
  proxy = new TcpProxy({
    targetHost: new URL(env.databaseUrl).hostname,
    targetPort: Number(new URL(env.databaseUrl).port || 5432),
  });
  await proxy.start();
  sampler = new BackendSampler(env.pool, databaseName(env.databaseUrl), APPLICATION_NAME);
});

afterAll(async () => {
  await sampler?.stop();
  await worker?.close();
  await proxy?.stop();
  await system?.stop();
  await receiver?.stop();
  await env?.dispose();
});

async function countByState(): Promise<Record<string, number>> {
  const { rows } = await env.pool.query<{ state: string; count: number }>(
    `SELECT state::text, count(*)::int AS count FROM webhook_delivery GROUP BY state`,
  );
  return Object.fromEntries(rows.map((row) => [row.state, row.count]));
}

/** Counts the error lines per whole second of the log, keyed by that second. */
function errorsPerSecond(records: readonly LogRecord[], from: number, to: number): Map<number, number> {
  const perSecond = new Map<number, number>();
  for (const record of records) {
    const at = logTime(record);
    if (record.level < 50 || at < from || at > to) continue;
    const second = Math.floor(at / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  return perSecond;
}

function logTime(record: LogRecord): number {
  const time = record.time;
  return typeof time === 'number' ? time : Date.parse(String(time));
}

describe('postgres outage under load', () => {
  test('pool recovers and every delivery ends delivered', async () => {
    await createReceiver(system, {
      name: 'outage-rx',
      endpoint: receiver.url(),
      subscriptions: ['test.*'],
    });
    for (let start = 0; start < EVENTS; start += 25) {
      const batch = Array.from({ length: Math.min(25, EVENTS - start) }, (_, i) =>
        publishEvent(system, 'test.outage', { n: start + i }),
      );
      await Promise.all(batch);
    }
    await waitFor(
      async () => {
        const { rows } = await env.pool.query<{ count: number }>(
          `SELECT count(*)::int AS count FROM webhook_delivery`,
        );
        return rows[0]!.count === EVENTS;
      },
      { message: `${EVENTS} deliveries to be dispatched` },
    );

    sampler.start();
    const config = system.config;
    const workerConfig = {
      ...config,
      databaseUrl: withApplicationName(proxy.proxiedUrl(env.databaseUrl), APPLICATION_NAME),
      databasePoolMax: POOL_MAX,
      deliveryConcurrency: CONCURRENCY,
    };
    worker = startDeliveryWorker(workerConfig, logs.logger);

    await waitFor(async () => ((await countByState()).delivered ?? 0) >= 50, {
      message: '50 deliveries before the outage',
      intervalMs: 10,
    });
    const cutAt = Date.now();
    await proxy.cut();
    const deliveredAtCut = (await countByState()).delivered ?? 0;
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    await proxy.restore();
    const restoredAt = Date.now();

    // The case allows 60 s; the test config's backoff brings it well below.
    await waitFor(async () => (await countByState()).delivered === EVENTS, {
      timeoutMs: 35_000,
      intervalMs: 200,
      message: `all ${EVENTS} deliveries delivered after the outage (delivered at the cut: ${deliveredAtCut}, now ${JSON.stringify(await countByState())})`,
    });
    const finishedAt = Date.now();
    await sampler.stop();

    // The outage left work for after it, so that it hit a loaded worker.
    expect(deliveredAtCut, 'deliveries finished before the cut').toBeLessThan(EVENTS - CONCURRENCY);
    expect(await countByState(), 'delivery states').toEqual({ delivered: EVENTS });

    // Never more backends than the pool allows, before, during or after.
    expect(sampler.errors, 'errors of the pg_stat_activity sampler').toEqual([]);
    expect(sampler.ticks.length, 'pg_stat_activity samples').toBeGreaterThan(20);
    expect(sampler.maxBackends(), `backends of ${APPLICATION_NAME}`).toBeLessThanOrEqual(POOL_MAX);

    // A POST whose attempt row could not be written is sent again with the
    // same webhook-id; that is the only duplicate the outage may cause.
    const postsPerId = new Map<string, number>();
    for (const request of receiver.requests) {
      const id = String(request.headers['webhook-id']);
      postsPerId.set(id, (postsPerId.get(id) ?? 0) + 1);
    }
    expect(postsPerId.size, 'distinct webhook-ids received').toBe(EVENTS);
    const duplicated = [...postsPerId.values()].filter((count) => count > 1);
    expect(Math.max(...postsPerId.values()), 'most POSTs of one webhook-id').toBeLessThanOrEqual(2);
    expect(duplicated.length, 'webhook-ids sent twice').toBeLessThanOrEqual(CONCURRENCY);
    const { rows: attempts } = await env.pool.query<{ attempts: number; rows: number }>(
      `SELECT d.attempts, count(a.*)::int AS rows FROM webhook_delivery d
       LEFT JOIN webhook_delivery_attempt a ON a.delivery_id = d.id GROUP BY d.id`,
    );
    expect(attempts.filter((row) => row.attempts !== 1 || row.rows !== 1), 'deliveries with other than one attempt row').toEqual([]);

    // Errors stop soon after PostgreSQL is back, and during the outage the
    // worker does not log errors in a tight loop.
    const lateErrors = logs.records.filter(
      (record) => record.level >= 50 && logTime(record) > restoredAt + 10_000,
    );
    expect(lateErrors, 'error lines later than 10 s after the outage').toEqual([]);
    const perSecond = errorsPerSecond(logs.records, cutAt, finishedAt);
    const busiest = Math.max(0, ...perSecond.values());
    // Each throttled cause logs at most once per second; the job-failure
    // line and a sweep or write failure may share one clock second.
    expect(busiest, `most error lines in one second: ${JSON.stringify([...perSecond])}`).toBeLessThanOrEqual(2);
    const linesDuringOutage = logs.records.filter((record) => {
      const at = logTime(record);
      return at >= cutAt && at <= restoredAt;
    });
    // Each request in flight at the cut may log up to 4 retries of its
    // attempt-row write. The rest is at most about one line per second.
    const lineBudget = CONCURRENCY * 5 + (OUTAGE_MS / 1000) * 2;
    expect(linesDuringOutage.length, 'log lines of any level during the outage').toBeLessThanOrEqual(lineBudget);
  });
});

describe('postgres outage during transactions', () => {
  test('prisma pool serves queries after the outage', async () => {
    const applicationName = 'whk-outage-api';
    const prisma = createPrismaClient({
      databaseUrl: withApplicationName(proxy.proxiedUrl(env.databaseUrl), applicationName),
      poolMax: POOL_MAX,
      applicationName,
    });
    const receivers = new ReceiverService(prisma, new NetworkGuard(['127.0.0.0/8']));
    const transactionSampler = new BackendSampler(
      env.pool,
      databaseName(env.databaseUrl),
      applicationName,
    ).start();
    const stopLoad = { stopped: false };
    const failures: { at: number; message: string }[] = [];
    const successes: number[] = [];
    try {
      const { receiver: rx } = await receivers.create({
        name: 'tx-rx',
        endpoint: receiver.url(),
        subscriptions: ['tx.a'],
      });

      // More transactions at once than the pool has connections, so that
      // every connection is inside a transaction when the proxy cuts them.
      const loops = Array.from({ length: 8 }, async (_, loop) => {
        for (let round = 0; !stopLoad.stopped; round += 1) {
          try {
            await receivers.update(rx.id, {
              description: `loop ${loop} round ${round}`,
              subscriptions: ['tx.a', `tx.loop${loop}`],
            });
            successes.push(Date.now());
          } catch (error) {
            failures.push({ at: Date.now(), message: String(error).slice(0, 200) });
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await proxy.restore();
      const restoredAt = Date.now();

      // A pool that lost its connections inside transactions would fail
      // every later query with "timeout exceeded when trying to connect".
      const view = await waitFor(
        async () => receivers.get(rx.id).catch(() => undefined),
        { timeoutMs: 15_000, intervalMs: 200, message: 'a query through the pool after the outage' },
      );
      expect(view.id).toBe(rx.id);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      stopLoad.stopped = true;
      await Promise.all(loops);

      // Late connection errors would mean a pool that stayed broken. A
      // transaction that waited past Prisma's 2 s maxWait on a loaded machine
      // is no sign of one.
      const late = failures.filter(
        (failure) => failure.at > restoredAt + 2_000 && !/Unable to start a transaction/.test(failure.message),
      );
      expect(late.map((failure) => failure.message), 'transaction failures later than 2 s after the outage').toEqual([]);
      const recovered = successes.filter((at) => at > restoredAt);
      expect(recovered.length, 'transactions committed after the outage').toBeGreaterThanOrEqual(10);
      expect(failures.length, 'transactions that failed during the outage').toBeGreaterThan(0);
      await transactionSampler.stop();
      expect(transactionSampler.maxBackends(), `backends of ${applicationName}`).toBeLessThanOrEqual(POOL_MAX);
      expect(transactionSampler.idleInTransactionOver(1), 'backends idle in transaction').toEqual([]);
    } finally {
      stopLoad.stopped = true;
      await transactionSampler.stop();
      // A dead pool never ends, because it waits for its leaked clients.
      await Promise.race([prisma.$disconnect(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    }
  });
});


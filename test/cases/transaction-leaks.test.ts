import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ReceiverService } from '../../producers/receivers.js';
import { createDatabase, type Database } from '../../shared/db/client.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import {
  startDeliveryWorker,
  type DeliveryWorkerHandle,
} from '../../workers/delivery/delivery-worker.js';
import { expectConsistentAttempts } from '../helpers/delivery-assertions.js';
import { captureLogs } from '../helpers/log-capture.js';
import { BackendSampler, databaseName, withApplicationName } from '../helpers/pg-activity.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent } from '../helpers/system-fixture.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

// Transactions whose start times out must never reach the pool still open.
// The delivery worker and a receiver service with short transaction limits
// reach PostgreSQL through a proxy that delays every chunk from the server
// by 0 to 250 ms. BEGIN is then often still on the wire when Prisma's
// maxWait runs out. The delivery worker writes with single statements; the
// receiver service's updates and deletions are Prisma transactions.
const EVENTS = 100;
const DELIVERY_APP = 'whk-delivery-test';
const SERVICE_APP = 'whk-receivers-test';

/** Notices and errors that mean a session was handed on inside a transaction. */
const LEAK_SIGNS = ['there is already a transaction in progress', 'current transaction is aborted'];

let env: TestEnv;
let system: RunningSystem;
let harness: ReceiverHarness;
let proxy: TcpProxy;
let worker: DeliveryWorkerHandle | undefined;
const logs = captureLogs('info');

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { delivery: false, overrides: { DATABASE_POOL_MAX: '2' } });
  harness = await new ReceiverHarness().start();
  const target = new URL(env.databaseUrl);
  proxy = new TcpProxy({
    targetHost: target.hostname,
    targetPort: Number(target.port || 5432),
    serverChunkDelayMs: () => Math.random() * 250,
  });
  await proxy.start();
});

afterAll(async () => {
  await worker?.close();
  await system?.stop();
  await proxy?.stop();
  await harness?.stop();
  await env?.dispose();
});

/** Records every notice and error text that the pool's sessions receive. */
function watchSessions(database: Database, seen: string[]): void {
  database.pool.on('connect', (client) => {
    client.on('notice', (notice) => seen.push(notice.message ?? ''));
    client.on('error', (error) => seen.push(error.message));
  });
}

/** Closes a database, giving up after `ms`: a pool with a leaked client never ends. */
async function closeWithin(database: Database, ms: number): Promise<void> {
  await Promise.race([database.close(), new Promise((resolve) => setTimeout(resolve, ms))]);
}

/** Busy-waits, as a CPU stall blocks the event loop. */
function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // Nothing else runs meanwhile, on purpose.
  }
}

describe('transactions under a slow network', () => {
  test('no session is left idle in transaction', async () => {
    const rx = await createReceiver(system, {
      name: 'tx-target',
      endpoint: harness.url(),
      subscriptions: ['test.*'],
    });
    const service = createDatabase({
      databaseUrl: withApplicationName(proxy.proxiedUrl(env.databaseUrl), SERVICE_APP),
      poolMax: 2,
      applicationName: SERVICE_APP,
      transactionOptions: { maxWait: 200, timeout: 5_000 },
    });
    const sessionMessages: string[] = [];
    watchSessions(service, sessionMessages);
    const receivers = new ReceiverService(service.prisma, new NetworkGuard(['127.0.0.0/8']));
    const samplers = [DELIVERY_APP, SERVICE_APP].map((name) =>
      new BackendSampler(env.pool, databaseName(env.databaseUrl), name, 200).start(),
    );
    const serviceErrors: string[] = [];
    const load = { stopped: false };

    try {
      const spares = [];
      for (let index = 0; index < 4; index += 1) {
        spares.push(
          (await receivers.create({ name: `tx-spare-${index}`, endpoint: harness.url(), subscriptions: ['spare.*'] }))
            .receiver,
        );
      }
      // Every kind of transaction the receiver service has, over and over.
      const loops = spares.map(async (spare, loop) => {
        for (let round = 0; !load.stopped; round += 1) {
          const steps = [
            () => receivers.update(spare.id, { description: `round ${round}`, subscriptions: ['spare.*', `spare.r${round}`] }),
            async () => {
              const added = await receivers.addSecret(spare.id);
              await receivers.deleteSecret(spare.id, added.id);
            },
          ];
          for (const step of steps) {
            try {
              await step();
            } catch (error) {
              serviceErrors.push(String(error));
            }
          }
          if (loop === 0 && round === 3) {
            const doomed = await receivers
              .create({ name: `tx-doomed-${round}`, endpoint: harness.url(), subscriptions: ['doomed.*'] })
              .catch((error: unknown) => serviceErrors.push(String(error)));
            if (typeof doomed === 'object') {
              await receivers.delete(doomed.receiver.id).catch((error: unknown) => serviceErrors.push(String(error)));
            }
          }
        }
      });

      worker = startDeliveryWorker(
        {
          ...system.config,
          databaseUrl: withApplicationName(proxy.proxiedUrl(env.databaseUrl), DELIVERY_APP),
          databasePoolMax: 2,
          deliveryConcurrency: 10,
        },
        logs.logger,
      );
      await Promise.all(Array.from({ length: EVENTS }, (_, n) => publishEvent(system, 'test.tx', { n })));
      await waitFor(
        async () => {
          const { rows } = await env.pool.query<{ count: number }>(
            `SELECT count(*)::int AS count FROM webhook_delivery WHERE rx_id = $1 AND state = 'delivered'`,
            [rx.id],
          );
          return rows[0]!.count === EVENTS;
        },
        { timeoutMs: 40_000, intervalMs: 200, message: `${EVENTS} deliveries to be delivered` },
      );
      load.stopped = true;
      await Promise.all(loops);
    } finally {
      load.stopped = true;
      for (const sampler of samplers) await sampler.stop();
      await service.close();
    }

    for (const sampler of samplers) {
      expect(sampler.errors, 'errors of the pg_stat_activity sampler').toEqual([]);
      expect(sampler.idleInTransactionOver(1), 'backends idle in transaction for over 1 s').toEqual([]);
    }
    expect(samplers[0]!.maxBackends(), `backends of ${DELIVERY_APP}`).toBeLessThanOrEqual(2);
    expect(samplers[1]!.maxBackends(), `backends of ${SERVICE_APP}`).toBeLessThanOrEqual(2);

    // The short maxWait made some transactions time out before they
    // started; that path is the one under test.
    const startTimeouts = serviceErrors.filter((error) => /P2028|Unable to start a transaction/.test(error));
    expect(startTimeouts.length, `transactions that could not start; errors: ${serviceErrors.slice(0, 3).join(' | ')}`).toBeGreaterThan(0);
    const otherErrors = serviceErrors.filter((error) => !startTimeouts.includes(error));
    expect(otherErrors, 'receiver service errors other than start timeouts').toEqual([]);
    for (const sign of LEAK_SIGNS) {
      expect(sessionMessages.filter((message) => message.includes(sign)), sign).toEqual([]);
      expect(serviceErrors.filter((message) => message.includes(sign)), sign).toEqual([]);
    }

    // Attempt numbers run 1..n, and each POST has its attempt row: the
    // worker never sends again when only a database write was slow.
    await expectConsistentAttempts(env.pool);
    const { rows } = await env.pool.query<{ id: string; rows: number }>(
      `SELECT d.id::text, count(a.*)::int AS rows FROM webhook_delivery d
       LEFT JOIN webhook_delivery_attempt a ON a.delivery_id = d.id
       WHERE d.rx_id = $1 GROUP BY d.id`,
      [rx.id],
    );
    const posts = new Map<string, number>();
    for (const request of harness.requests) {
      const id = String(request.headers['webhook-id']);
      posts.set(id, (posts.get(id) ?? 0) + 1);
    }
    const mismatched = rows.filter((row) => posts.get(row.id) !== row.rows);
    expect(mismatched, 'deliveries whose POST count differs from their attempt rows').toEqual([]);
    expect(logs.records.filter((record) => record.level >= 50), 'error lines of the delivery worker').toEqual([]);
  });
});

describe('transaction start during a CPU stall', () => {
  test('stalled start rolls back', async () => {
    // No proxy and Prisma's default maxWait (2 s). The event loop stops for
    // 2.5 s right after the transaction requests a connection, so that
    // maxWait runs out while BEGIN is on the wire.
    const database = createDatabase({
      databaseUrl: withApplicationName(env.databaseUrl, 'whk-stall-test'),
      poolMax: 1,
      applicationName: 'whk-stall-test',
    });
    const sessionMessages: string[] = [];
    watchSessions(database, sessionMessages);
    const receivers = new ReceiverService(database.prisma, new NetworkGuard(['127.0.0.0/8']));
    const sampler = new BackendSampler(env.pool, databaseName(env.databaseUrl), 'whk-stall-test', 200);
    try {
      const { receiver } = await receivers.create({ name: 'stall-rx', endpoint: harness.url(), subscriptions: ['stall.*'] });
      let stallNext = true;
      const connect = database.pool.connect.bind(database.pool);
      database.pool.connect = ((...args: []) => {
        const pending = connect(...args);
        if (args.length === 0 && stallNext) {
          stallNext = false;
          blockEventLoop(2_500);
        }
        return pending;
      }) as typeof database.pool.connect;

      const stalled = await receivers
        .update(receiver.id, { description: 'written during the stall' })
        .then(() => 'committed', (error: unknown) => String(error));
      expect(stalled, 'the stalled update').toMatch(/P2028|Unable to start a transaction/);
      sampler.start();

      // The one connection of the pool is usable, not inside a transaction.
      const after = await receivers.update(receiver.id, { description: 'written after the stall' });
      expect(after.description).toBe('written after the stall');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await sampler.stop();
      expect(sampler.idleInTransactionOver(1), 'backends idle in transaction for over 1 s').toEqual([]);
      for (const sign of LEAK_SIGNS) {
        expect(sessionMessages.filter((message) => message.includes(sign)), sign).toEqual([]);
      }
      const { rows } = await env.pool.query<{ description: string }>(
        `SELECT description FROM webhook_rx WHERE id = $1`,
        [receiver.id],
      );
      expect(rows[0]!.description).toBe('written after the stall');
    } finally {
      await sampler.stop();
      await closeWithin(database, 2_000);
    }
  });
});

describe('pool checkout guard', () => {
  async function backendState(pid: number): Promise<string | null> {
    const { rows } = await env.pool.query<{ state: string }>(
      `SELECT state FROM pg_stat_activity WHERE pid = $1`,
      [pid],
    );
    return rows[0]?.state ?? null;
  }

  test('release inside transaction closes session', async () => {
    const database = createDatabase({ databaseUrl: env.databaseUrl, poolMax: 1, applicationName: 'whk-guard-test' });
    try {
      const client = await database.pool.connect();
      const pid = (client as unknown as { processID: number }).processID;
      await client.query('BEGIN');
      await client.query('SELECT 1');
      client.release();
      // Releasing twice is harmless, because the guard may release first.
      client.release();

      const { rows } = await database.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      expect(rows[0]!.pid, 'backend of the next query').not.toBe(pid);
      await waitFor(async () => (await backendState(pid)) === null, {
        timeoutMs: 5_000,
        message: `backend ${pid} to end`,
      });
    } finally {
      await closeWithin(database, 2_000);
    }
  });

  test('lost connection frees its pool slot', async () => {
    const database = createDatabase({ databaseUrl: env.databaseUrl, poolMax: 1, applicationName: 'whk-guard-test' });
    try {
      const client = await database.pool.connect();
      const pid = (client as unknown as { processID: number }).processID;
      await client.query('BEGIN');
      const lost = new Promise((resolve) => client.once('error', resolve));
      await env.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await lost;
      // The holder never releases the client, as @prisma/adapter-pg does
      // not when its ROLLBACK fails. The one slot must be free all the same;
      // otherwise this query waits for the 10 s connection timeout.
      const started = Date.now();
      const { rows } = await database.pool.query<{ one: number }>('SELECT 1 AS one');
      expect(rows[0]!.one).toBe(1);
      expect(Date.now() - started, 'time to get a connection').toBeLessThan(2_000);
    } finally {
      await closeWithin(database, 2_000);
    }
  });
});

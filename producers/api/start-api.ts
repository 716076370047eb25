import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../shared/config.js';
import { createPrismaClient } from '../../shared/db/client.js';
import type { Logger } from '../../shared/logger.js';
import { runCloseSteps } from '../../shared/lifecycle.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import { openProcessOps, type ProcessOps } from '../../shared/ops/process-ops.js';
import { allQueues, openQueues, producerConnection } from '../../shared/queues.js';
import { Publisher } from '../publish.js';
import { ReceiverService } from '../receivers.js';
import { RedeliveryService } from '../redeliver.js';
import { buildApp } from './app.js';

export interface ApiHandle {
  /** Base URL the API listens on, such as `http://127.0.0.1:3000`. */
  readonly url: string;
  /** The Fastify instance, for tests that inspect its routes. */
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * Starts the HTTP API and listens on API_HOST:API_PORT. `ops` is the
 * process's health check and metrics when several roles share a process;
 * without it the API opens and closes its own.
 */
export async function startApi(
  config: Config,
  logger: Logger,
  ops?: ProcessOps,
): Promise<ApiHandle> {
  const ownOps = ops === undefined ? openProcessOps(config, logger, 'api') : undefined;
  const processOps = ops ?? ownOps!;
  if (ownOps !== undefined) ownOps.startStats({ queueStats: true });
  const prisma = createPrismaClient({
    databaseUrl: config.databaseUrl,
    poolMax: config.databasePoolMax,
    applicationName: 'webhook-api',
  });
  const redis = producerConnection(config);
  // ioredis reports connection problems as events; without a listener Node
  // would print them as unhandled. The health route reports Redis state.
  redis.on('error', () => {});
  const queues = openQueues(redis, config);
  for (const queue of allQueues(queues)) queue.on('error', () => {});
  const publisher = new Publisher({
    prisma,
    dispatchQueue: queues.dispatch,
    logger,
    maxPayloadBytes: config.maxPayloadBytes,
  });
  const receivers = new ReceiverService(
    prisma,
    new NetworkGuard(config.allowedPrivateNetworks),
  );
  const redelivery = new RedeliveryService({
    prisma,
    dispatchQueue: queues.dispatch,
    deliveryQueues: queues.delivery,
    logger,
    probeTimeoutMs: config.probeTimeoutMs,
  });
  const closeConnections = () =>
    runCloseSteps(
      [
        { name: 'closing the dispatch queue', run: () => queues.dispatch.close(), timeoutMs: 5_000 },
        { name: 'closing the delivery queues', run: () => queues.delivery.close(), timeoutMs: 5_000 },
        { name: 'closing Redis', run: async () => redis.disconnect() },
        { name: 'closing PostgreSQL', run: () => prisma.$disconnect() },
        { name: 'closing the health check and metrics', run: async () => ownOps?.close() },
      ],
      logger,
    );
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  try {
    app = await buildApp({
      prisma,
      redis,
      queues,
      publisher,
      receivers,
      redelivery,
      logger,
      apiToken: config.apiToken,
      maxPayloadBytes: config.maxPayloadBytes,
      bullBoardPath: config.bullBoardPath,
      bullBoardPublicPath: config.bullBoardPublicPath,
      ops: processOps,
      requestTimeoutMs: config.apiRequestTimeoutMs,
      idempotencyKeyTtlMs: config.idempotencyKeyTtlMs,
    });
    await app.listen({ host: config.apiHost, port: config.apiPort });
  } catch (error) {
    // A taken port must not leave Redis reconnecting in the background,
    // which would keep an embedding process (tests, the demo) alive.
    await app?.close().catch(() => {});
    await closeConnections();
    throw error;
  }
  const server = app;
  const address = server.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, bullBoard: `${url}${config.bullBoardPath}` }, 'API listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    app: server,
    close() {
      closing ??= (async () => {
        await runCloseSteps([{ name: 'closing the HTTP server', run: () => server.close() }], logger);
        await closeConnections();
      })();
      return closing;
    },
  };
}

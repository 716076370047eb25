import type { AddressInfo } from 'node:net';
import type { Config } from '../../shared/config.js';
import { createPrismaClient } from '../../shared/db/client.js';
import type { Logger } from '../../shared/logger.js';
import { runCloseSteps } from '../../shared/lifecycle.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import { allQueues, openQueues, producerConnection } from '../../shared/queues.js';
import { Publisher } from '../publish.js';
import { ReceiverService } from '../receivers.js';
import { buildApp } from './app.js';

export interface ApiHandle {
  /** Base URL the API listens on, such as `http://127.0.0.1:3000`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the HTTP API and listens on API_HOST:API_PORT. */
export async function startApi(config: Config, logger: Logger): Promise<ApiHandle> {
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
  const closeConnections = () =>
    runCloseSteps(
      [
        { name: 'closing the dispatch queue', run: () => queues.dispatch.close(), timeoutMs: 5_000 },
        { name: 'closing the delivery queues', run: () => queues.delivery.close(), timeoutMs: 5_000 },
        { name: 'closing Redis', run: async () => redis.disconnect() },
        { name: 'closing PostgreSQL', run: () => prisma.$disconnect() },
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
      logger,
      apiToken: config.apiToken,
      maxPayloadBytes: config.maxPayloadBytes,
      bullBoardPath: config.bullBoardPath,
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
    close() {
      closing ??= (async () => {
        await runCloseSteps([{ name: 'closing the HTTP server', run: () => server.close() }], logger);
        await closeConnections();
      })();
      return closing;
    },
  };
}

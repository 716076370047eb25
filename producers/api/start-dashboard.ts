import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import type { Config } from '../../shared/config.js';
import { runCloseSteps } from '../../shared/lifecycle.js';
import type { Logger } from '../../shared/logger.js';
import type { ProcessOps } from '../../shared/ops/process-ops.js';
import { registerDashboard } from './dashboard.js';
import { errorBody } from './error-body.js';
import { registerHealthRoute } from './health.js';

export interface DashboardHandle {
  /** Base URL the dashboard listens on, such as `http://127.0.0.1:3000`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts the dashboard role: Bull Board at BULL_BOARD_PATH behind the API
 * token, with /health, /livez and /metrics, on API_HOST:API_PORT. It
 * serves no /v1 route and opens no connection beyond those of `ops`.
 */
export async function startDashboard(
  config: Config,
  logger: Logger,
  ops: ProcessOps,
): Promise<DashboardHandle> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // The board's actions send small JSON bodies.
    bodyLimit: 64 * 1024,
    // As in the API: Node 20 applies requestTimeout only when it is given
    // to http.createServer.
    requestTimeout: config.apiRequestTimeoutMs,
    http: { requestTimeout: config.apiRequestTimeoutMs, connectionsCheckingInterval: 1_000 },
  });
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `no route for ${request.method} ${request.url}`, request.id)),
  );
  registerHealthRoute(app, { ops });
  try {
    await registerDashboard(app, {
      ops,
      bullBoardPath: config.bullBoardPath,
      bullBoardPublicPath: config.bullBoardPublicPath,
      apiToken: config.apiToken,
    });
    await app.listen({ host: config.apiHost, port: config.apiPort });
  } catch (error) {
    await app.close().catch(() => {});
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, bullBoard: `${url}${config.bullBoardPath}` }, 'dashboard listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= runCloseSteps([{ name: 'closing the HTTP server', run: () => app.close() }], logger);
      return closing;
    },
  };
}

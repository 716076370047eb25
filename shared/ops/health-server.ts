import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.js';
import type { ProcessOps } from './process-ops.js';

export interface HealthServerHandle {
  /** Base URL, such as `http://127.0.0.1:9464`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Returns the status and body of GET /health for a report. */
export async function readinessResponse(ops: ProcessOps) {
  const report = await ops.health.check();
  const healthy = report.postgres === 'ok' && report.redis === 'ok';
  return { status: healthy ? 200 : 503, body: report };
}

/**
 * Starts the health and metrics server of a process on `host:port`:
 *
 * - `GET /livez` returns 200 while the event loop runs, for liveness probes.
 * - `GET /health` returns 200, or 503 when PostgreSQL or Redis does not
 *   respond, with the state of each, for readiness probes.
 * - `GET /metrics` returns the Prometheus metrics of the process.
 *
 * Every response comes within about a second, whatever the dependencies do.
 */
export async function startHealthServer(
  ops: ProcessOps,
  options: { host: string; port: number; logger: Logger },
): Promise<HealthServerHandle> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    const send = (status: number, contentType: string, body: string) => {
      response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(405, 'application/json', JSON.stringify({ error: 'method not allowed; use GET' }));
      return;
    }
    if (path === '/livez') {
      send(200, 'application/json', '{"status":"ok"}');
    } else if (path === '/health') {
      void readinessResponse(ops).then(({ status, body }) =>
        send(status, 'application/json', JSON.stringify(body)),
      );
    } else if (path === '/metrics') {
      ops.metrics.registry.metrics().then(
        (text) => send(200, ops.metrics.registry.contentType, text),
        (error: unknown) => {
          options.logger.error({ err: error }, 'collecting metrics failed');
          send(500, 'text/plain', 'collecting metrics failed; see the server log\n');
        },
      );
    } else {
      send(404, 'application/json', JSON.stringify({ error: `no route for GET ${path}; use /health, /livez or /metrics` }));
    }
  });
  // Probes send small requests; these limits keep a stuck client from
  // holding a socket open.
  server.requestTimeout = 5_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  options.logger.info({ url }, 'health server listening');
  return {
    url,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

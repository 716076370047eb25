import type { FastifyInstance } from 'fastify';
import { readinessResponse } from '../../shared/ops/health-server.js';
import type { ProcessOps } from '../../shared/ops/process-ops.js';

/**
 * Registers the routes that need no token. GET /health returns 200, or 503
 * with the state of each store when PostgreSQL or Redis does not respond
 * within a second. GET /livez returns 200 while the process runs. GET
 * /metrics returns the process's Prometheus metrics, read from gauges
 * without waiting on Redis.
 */
export function registerHealthRoute(app: FastifyInstance, deps: { ops: ProcessOps }) {
  app.get('/health', async (_request, reply) => {
    const { status, body } = await readinessResponse(deps.ops);
    return reply.code(status).header('cache-control', 'no-store').send(body);
  });
  app.get('/livez', async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  );
  app.get('/metrics', async (_request, reply) => {
    const registry = deps.ops.metrics.registry;
    const text = await registry.metrics();
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(text);
  });
}

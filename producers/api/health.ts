import type { FastifyInstance } from 'fastify';
import type { PrismaClient } from '../../shared/db/client.js';
import { withTimeout, type RedisClient } from '../../shared/queues.js';

/** GET /health: 200 when PostgreSQL and Redis answer within a second, else 503. */
export function registerHealthRoute(
  app: FastifyInstance,
  deps: { prisma: PrismaClient; redis: RedisClient },
) {
  app.get('/health', async (_request, reply) => {
    const [postgres, redis] = await Promise.all([
      withTimeout(deps.prisma.$queryRaw`SELECT 1`, 1_000, 'postgres')
        .then(() => 'ok')
        .catch(() => 'down'),
      withTimeout(deps.redis.ping(), 1_000, 'redis')
        .then(() => 'ok')
        .catch(() => 'down'),
    ]);
    const healthy = postgres === 'ok' && redis === 'ok';
    return reply.code(healthy ? 200 : 503).send({ postgres, redis });
  });
}

import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import type { ProcessOps } from '../../shared/ops/process-ops.js';
import { allQueues } from '../../shared/queues.js';
import { requireBoardCredentials } from './auth.js';
import { removeThirdPartyFontsUnder } from './dashboard-html.js';

/** Maximum time of a Bull Board API call before it returns 503, in ms. */
export const BOARD_API_DEADLINE_MS = 1_500;

type ApiRoutes = Parameters<FastifyAdapter['setApiRoutes']>[0];
type ErrorHandler = Parameters<FastifyAdapter['setErrorHandler']>[0];

/** Thrown when a Bull Board API call runs past BOARD_API_DEADLINE_MS. */
class BoardDeadlineError extends Error {
  constructor(route: string) {
    super(`Redis did not answer within ${BOARD_API_DEADLINE_MS} ms for ${route}; check that Redis is up`);
    this.name = 'BoardDeadlineError';
  }
}

/**
 * Bull Board's Fastify adapter with a deadline on every API call and 503
 * for Redis errors. BullMQ waits for its Redis connection to become ready
 * before it sends a command, so without the deadline the board's API hangs
 * for as long as Redis is down at start-up.
 */
class DeadlineFastifyAdapter extends FastifyAdapter {
  override setErrorHandler(handler: ErrorHandler): this {
    return super.setErrorHandler(boardErrorHandler(handler));
  }

  override setApiRoutes(routes: ApiRoutes): FastifyAdapter {
    return super.setApiRoutes(
      routes.map((route) => ({
        ...route,
        handler: (request) => {
          let timer: NodeJS.Timeout | undefined;
          const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new BoardDeadlineError(String(route.route))), BOARD_API_DEADLINE_MS);
          });
          return Promise.race([Promise.resolve(route.handler(request)), deadline]).finally(() =>
            clearTimeout(timer),
          );
        },
      })),
    );
  }
}

/** Returns 503 for errors from an unreachable or unresponsive Redis, and Bull Board's response for others. */
function boardErrorHandler(fallback: ErrorHandler): ErrorHandler {
  return (error) => {
    const message = error.message ?? '';
    const redisUnavailable =
      error instanceof BoardDeadlineError ||
      /Command timed out|enableOfflineQueue|Connection is closed|ECONNREFUSED|ETIMEDOUT|ECONNRESET/.test(message);
    if (!redisUnavailable) return fallback(error);
    // Bull Board's status type lists the codes it uses itself; Fastify sends any.
    return { status: 503 as 500, body: { error: 'redis_unavailable', message } };
  };
}

/**
 * Mounts Bull Board with every queue at `bullBoardPath`, behind the API
 * token (see requireBoardCredentials). Its page refers to its assets and API
 * relative to `bullBoardPublicPath`, which differs from `bullBoardPath`
 * only behind a reverse proxy that strips a prefix. The board's queues use
 * the operations connection of the process, whose commands time out
 * instead of waiting for a paused Redis.
 */
export async function registerDashboard(
  app: FastifyInstance,
  deps: {
    ops: ProcessOps;
    bullBoardPath: string;
    bullBoardPublicPath: string;
    apiToken: string;
  },
) {
  const board = new DeadlineFastifyAdapter();
  board.setBasePath(deps.bullBoardPublicPath);
  // Each delivery shard is a queue of its own on the board.
  createBullBoard({
    queues: allQueues(deps.ops.boardQueues()).map((queue) => new BullMQAdapter(queue)),
    serverAdapter: board,
  });
  await app.register(async (scope) => {
    // Static assets stay public: they are the same files for every install.
    requireBoardCredentials(scope, deps.apiToken, `${deps.bullBoardPath}/static/`);
    removeThirdPartyFontsUnder(scope, deps.bullBoardPath);
    await scope.register(board.registerPlugin(), { prefix: deps.bullBoardPath });
  });
}

import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { allQueues, type Queues } from '../../shared/queues.js';

/** Mounts Bull Board with every queue at `basePath`. */
export async function registerDashboard(
  app: FastifyInstance,
  deps: { queues: Queues; bullBoardPath: string },
) {
  const board = new FastifyAdapter();
  board.setBasePath(deps.bullBoardPath);
  // Each delivery shard is a queue of its own on the board.
  createBullBoard({
    queues: allQueues(deps.queues).map((queue) => new BullMQAdapter(queue)),
    serverAdapter: board,
  });
  await app.register(board.registerPlugin(), { prefix: deps.bullBoardPath });
}

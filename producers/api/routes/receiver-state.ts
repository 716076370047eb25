import type { FastifyInstance } from 'fastify';
import type { ApiDependencies } from '../app.js';
import { disableReceiver, enableReceiver } from '../contract/receiver-state.js';
import { implementRoute } from '../contract/server.js';

/** Registers POST /v1/receivers/:id/disable and /enable. */
export function registerReceiverStateRoutes(app: FastifyInstance, deps: ApiDependencies) {
  const receivers = deps.receivers;

  implementRoute(app, disableReceiver, async ({ params, body }, request) => {
    const { receiver, changed } = await receivers.disable(params.id, body?.reason);
    if (changed) {
      request.log.warn({ rxId: receiver.id, reason: receiver.disabled_reason }, 'receiver disabled');
    }
    return receiver;
  });

  implementRoute(app, enableReceiver, async ({ params }, request) => {
    const { receiver, changed } = await receivers.enable(params.id);
    if (changed) request.log.info({ rxId: receiver.id }, 'receiver enabled');
    return receiver;
  });
}

import type { FastifyInstance } from 'fastify';
import type { ApiDependencies } from '../app.js';
import { DEFAULT_PAGE_LIMIT } from '../contract/fields.js';
import {
  addReceiverSecret,
  createReceiver,
  deleteReceiver,
  deleteReceiverSecret,
  getReceiver,
  listReceivers,
  listReceiverSecrets,
  updateReceiver,
} from '../contract/receivers.js';
import { implementRoute } from '../contract/server.js';

export function registerReceiverRoutes(app: FastifyInstance, deps: ApiDependencies) {
  const receivers = deps.receivers;

  implementRoute(app, createReceiver, async ({ body }, request) => {
    const created = await receivers.create(body);
    request.log.info({ rxId: created.receiver.id }, 'receiver created');
    return { ...created.receiver, secret: created.secret };
  });

  implementRoute(app, listReceivers, async ({ query }) => {
    const page = await receivers.list({
      limit: query.limit ?? DEFAULT_PAGE_LIMIT,
      after: query.after,
    });
    return { receivers: page.receivers, next_after: page.nextAfter };
  });

  implementRoute(app, getReceiver, async ({ params }) => receivers.get(params.id));

  implementRoute(app, updateReceiver, async ({ params, body }) =>
    receivers.update(params.id, body),
  );

  implementRoute(app, deleteReceiver, async ({ params }, request) => {
    await receivers.delete(params.id);
    request.log.info({ rx: params.id }, 'receiver deleted');
  });

  implementRoute(app, addReceiverSecret, async ({ params, body }) =>
    receivers.addSecret(params.id, body?.secret),
  );

  implementRoute(app, listReceiverSecrets, async ({ params }) => {
    const receiver = await receivers.get(params.id);
    return { secrets: receiver.secrets };
  });

  implementRoute(app, deleteReceiverSecret, async ({ params }) => {
    await receivers.deleteSecret(params.id, params.secret_id);
  });
}

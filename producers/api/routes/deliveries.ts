import type { FastifyInstance } from 'fastify';
import {
  decodeCursor,
  findReceiver,
  getDelivery as readDelivery,
  listDeliveries as readDeliveries,
  parseTimestamp,
} from '../../deliveries-query.js';
import type { ApiDependencies } from '../app.js';
import {
  createResend,
  getDelivery,
  getResend,
  listDeliveries,
  probeReceiver,
  resendDelivery,
  resendEvent,
} from '../contract/deliveries.js';
import { DEFAULT_PAGE_LIMIT } from '../contract/fields.js';
import { implementRoute } from '../contract/server.js';

/** Registers the delivery listing, resends and probes. */
export function registerDeliveryRoutes(app: FastifyInstance, deps: ApiDependencies) {
  const redelivery = deps.redelivery;

  implementRoute(app, listDeliveries, async ({ query }) => {
    const rx = query.receiver === undefined ? undefined : await findReceiver(deps.prisma, query.receiver, 'receiver');
    const page = await readDeliveries(
      deps.prisma,
      {
        rxId: rx?.id,
        state: query.state,
        since: query.since === undefined ? undefined : parseTimestamp(query.since, 'since'),
        until: query.until === undefined ? undefined : parseTimestamp(query.until, 'until'),
      },
      {
        limit: query.limit ?? DEFAULT_PAGE_LIMIT,
        cursor: query.after === undefined ? undefined : decodeCursor(query.after, 'after'),
      },
    );
    return { deliveries: page.deliveries, next_after: page.next_cursor };
  });

  implementRoute(app, getDelivery, async ({ params }) => readDelivery(deps.prisma, params.id));

  implementRoute(app, resendDelivery, async ({ params }) => redelivery.resendDelivery(params.id));

  implementRoute(app, resendEvent, async ({ params, body }) =>
    redelivery.resendEvent(params.id, body.receiver),
  );

  implementRoute(app, createResend, async ({ body }) =>
    redelivery.createBulkResend({
      receiver: body?.receiver,
      since: body?.since === undefined ? undefined : parseTimestamp(body.since, 'since'),
      until: body?.until === undefined ? undefined : parseTimestamp(body.until, 'until'),
    }),
  );

  implementRoute(app, getResend, async ({ params }) => redelivery.getBulkResend(params.id));

  implementRoute(app, probeReceiver, async ({ params, body }) =>
    redelivery.probe(params.id, { resend: body?.resend }),
  );
}

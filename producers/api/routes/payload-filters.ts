import type { FastifyInstance } from 'fastify';
import { checkFilter } from '../../filter-check.js';
import type { ApiDependencies } from '../app.js';
import { testPayloadFilter } from '../contract/payload-filters.js';
import { implementRoute } from '../contract/server.js';

/** Registers POST /v1/filters/test. */
export function registerPayloadFilterRoutes(app: FastifyInstance, deps: ApiDependencies) {
  implementRoute(app, testPayloadFilter, async ({ body }) =>
    checkFilter(body.filter, body.data, deps.maxPayloadBytes),
  );
}

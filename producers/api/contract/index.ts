import { deliveryRoutes } from './deliveries.js';
import { getOpenApiDocument } from './document-route.js';
import { eventRoutes } from './events.js';
import { payloadFilterRoutes } from './payload-filters.js';
import { receiverRoutes } from './receivers.js';
import { receiverStateRoutes } from './receiver-state.js';

export { defineRoute } from './route.js';
export type { RouteInput, RouteOutput, RouteSpec } from './route.js';
export { errorResponse, ERROR_CODES, type ErrorCode, type ErrorResponse } from './errors.js';

/**
 * Every route of the HTTP API. The server registers a handler for each, the
 * OpenAPI document lists each and the client has a method for each. A route
 * file of a new feature exports its list, which is spread in here.
 */
export const apiRoutes = [
  ...eventRoutes,
  ...receiverRoutes,
  ...receiverStateRoutes,
  ...payloadFilterRoutes,
  ...deliveryRoutes,
  getOpenApiDocument,
] as const;

export type ApiRoutes = typeof apiRoutes;
export type ApiRoute = ApiRoutes[number];

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { errorBody } from './error-body.js';

function sameToken(given: string, expected: string): boolean {
  // Hashing first gives equal lengths, which timingSafeEqual requires, so
  // the comparison time does not reveal the token's length either.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Requires `Authorization: Bearer <API_TOKEN>` on every route under one of
 * `prefixes`. An empty token turns the check off.
 */
export function requireBearerToken(
  app: FastifyInstance,
  apiToken: string,
  prefixes: readonly string[],
) {
  if (apiToken === '') return;
  app.addHook('onRequest', async (request, reply) => {
    // Checks the matched route, not the raw URL, because the router
    // decodes percent-escapes and "/%761/receivers" reaches /v1 routes.
    const route = request.routeOptions.url ?? '';
    if (!prefixes.some((prefix) => route.startsWith(prefix))) return;
    const header = request.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (token === '' || !sameToken(token, apiToken)) {
      return reply
        .code(401)
        .send(errorBody('unauthorized', 'missing or invalid "Authorization: Bearer <API_TOKEN>" header', request.id));
    }
  });
}

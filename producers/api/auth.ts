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

/** Realm that browsers show in their login prompt for Bull Board. */
export const BOARD_AUTH_REALM = 'webhooks';

/**
 * Returns the token of an `Authorization` header: the Bearer token, or the
 * password of HTTP Basic credentials, because a browser that opens Bull
 * Board cannot send a Bearer header. The Basic user name is ignored.
 */
export function tokenOfAuthorization(header: string): string {
  if (header.startsWith('Bearer ')) return header.slice(7);
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (basic === null) return '';
  const credentials = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = credentials.indexOf(':');
  return colon === -1 ? '' : credentials.slice(colon + 1);
}

/**
 * Requires the API token on every route of `scope` except those under
 * `publicPrefix` (Bull Board's static assets), as a Bearer token or as the
 * password of HTTP Basic credentials. A 401 carries
 * `WWW-Authenticate: Basic realm="webhooks"`, so that a browser prompts for
 * the credentials. A request that changes state must come from the board's own
 * page: browsers send Basic credentials along with requests that other sites
 * start, so one whose `Sec-Fetch-Site` names another site is rejected with
 * 403. An empty token turns every check off.
 */
export function requireBoardCredentials(
  scope: FastifyInstance,
  apiToken: string,
  publicPrefix: string,
) {
  if (apiToken === '') return;
  scope.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url ?? '';
    if (route.startsWith(publicPrefix)) return;
    const token = tokenOfAuthorization(request.headers.authorization ?? '');
    if (token === '' || !sameToken(token, apiToken)) {
      return reply
        .code(401)
        .header('www-authenticate', `Basic realm="${BOARD_AUTH_REALM}", charset="UTF-8"`)
        .send(
          errorBody(
            'unauthorized',
            'missing or invalid credentials; send "Authorization: Bearer <API_TOKEN>" or HTTP Basic credentials with API_TOKEN as the password',
            request.id,
          ),
        );
    }
    const site = request.headers['sec-fetch-site'];
    const changesState = request.method !== 'GET' && request.method !== 'HEAD';
    if (changesState && (site === 'cross-site' || site === 'same-site')) {
      return reply
        .code(403)
        .send(errorBody('forbidden', `Bull Board actions must come from its own page, got Sec-Fetch-Site: ${site}`, request.id));
    }
  });
}

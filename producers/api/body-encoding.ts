import type { FastifyInstance } from 'fastify';
import { errorBody } from './error-body.js';

/**
 * Returns 415 for a request body with a `Content-Encoding` other than
 * `identity`, before any of it is read. The API does not decompress
 * bodies: Fastify's body limit counts the bytes on the wire, so a small
 * gzip body could expand far past it.
 */
export function rejectEncodedBodies(app: FastifyInstance) {
  app.addHook('onRequest', async (request, reply) => {
    const encoding = (request.headers['content-encoding'] ?? '').trim().toLowerCase();
    if (encoding === '' || encoding === 'identity') return;
    // The body is not read, so the connection cannot be reused for another request.
    reply.header('connection', 'close');
    return reply.code(415).send(
      errorBody(
        'unsupported_media_type',
        `Content-Encoding: must be absent or identity, got ${JSON.stringify(encoding.slice(0, 100))}; send the body uncompressed`,
        request.id,
      ),
    );
  });
}

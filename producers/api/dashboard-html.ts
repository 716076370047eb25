import type { FastifyInstance } from 'fastify';

// Bull Board's page (9.x) links a Google Fonts stylesheet. Removing the tag
// keeps the dashboard from sending operators' browsers to a third party and
// from waiting on it where the network has no way out. The page falls back
// to the system sans-serif and monospace fonts.
const THIRD_PARTY_FONT_LINK = /<link\b[^>]*\bhref="https:\/\/fonts\.(?:googleapis|gstatic)\.com\/[^"]*"[^>]*>\s*/g;

/** Removes third-party font links from a page's HTML. */
export function removeThirdPartyFonts(html: string): string {
  return html.replace(THIRD_PARTY_FONT_LINK, '');
}

/**
 * Rewrites the HTML pages served under `basePath` with
 * {@link removeThirdPartyFonts}. Other responses pass unchanged.
 */
export function removeThirdPartyFontsUnder(app: FastifyInstance, basePath: string) {
  app.addHook('onSend', async (request, reply, payload) => {
    if (typeof payload !== 'string') return payload;
    if (!request.url.startsWith(basePath)) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('text/html')) return payload;
    return removeThirdPartyFonts(payload);
  });
}

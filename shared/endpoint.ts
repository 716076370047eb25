import { isIP } from 'node:net';
import { ValidationError } from './errors.js';
import type { NetworkGuard } from './network-guard.js';

export const MAX_ENDPOINT_LENGTH = 2048;

/**
 * Checks a receiver's endpoint URL: http or https, no credentials, and no
 * literal address that the network guard refuses. Names are resolved and
 * checked again on every attempt.
 */
export function assertEndpoint(
  value: unknown,
  guard: NetworkGuard,
  field = 'endpoint',
): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(field, 'must be an http or https URL');
  }
  if (value.length > MAX_ENDPOINT_LENGTH) {
    throw new ValidationError(
      field,
      `must be at most ${MAX_ENDPOINT_LENGTH} characters, got ${value.length}`,
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(field, `must be an absolute http or https URL, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError(
      field,
      `must use http or https, got "${url.protocol.replace(/:$/, '')}"`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValidationError(
      field,
      'must not contain credentials; receivers authenticate requests by their signature',
    );
  }
  // url.hash is '' for an empty fragment, but href keeps its "#".
  if (url.href.includes('#')) {
    throw new ValidationError(field, 'must not contain a fragment ("#...")');
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const literal =
    isIP(host) !== 0 ? host : isLocalhostName(host) ? '127.0.0.1' : null;
  if (literal !== null) {
    const reason = guard.refusalReason(literal);
    if (reason !== null) throw new ValidationError(field, reason);
  }
  return url.toString();
}

/**
 * Tells whether a host name is reserved for loopback: "localhost" and every
 * name under it (RFC 6761, section 6.3), with or without a trailing dot.
 */
function isLocalhostName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

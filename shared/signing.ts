import { createHmac, randomBytes } from 'node:crypto';
import { ValidationError } from './errors.js';

/** The Standard Webhooks secret form: `whsec_` and base64 of the key bytes. */
const SECRET_PATTERN = /^whsec_([A-Za-z0-9+/]+={0,2})$/;
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

/** Generates a secret of 32 random bytes in `whsec_` form. */
export function generateSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** Decodes a `whsec_` secret to its key; throws ValidationError if malformed. */
export function decodeSecret(secret: unknown, field = 'secret'): Buffer {
  const rule = `must be "whsec_" followed by base64 of ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes, without a "v1," prefix`;
  if (typeof secret !== 'string') {
    throw new ValidationError(field, `${rule}, got ${typeof secret}`);
  }
  const match = SECRET_PATTERN.exec(secret);
  // The secret itself never goes into the message: it may be a real key.
  if (!match || match[1]!.length % 4 !== 0) {
    throw new ValidationError(field, rule);
  }
  const key = Buffer.from(match[1]!, 'base64');
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new ValidationError(field, `${rule}, got ${key.length} bytes`);
  }
  return key;
}

/**
 * Computes the HMAC-SHA256 of `id.timestamp.body` keyed with `key`, the
 * bytes that a `v1` signature carries in base64. A string body is signed as
 * its UTF-8 bytes.
 */
export function signatureDigest(
  key: Buffer,
  webhookId: string,
  timestampSeconds: number | string,
  body: string | Uint8Array,
): Buffer {
  return createHmac('sha256', key)
    .update(`${webhookId}.${timestampSeconds}.`)
    .update(body)
    .digest();
}

/**
 * Signs one request as Standard Webhooks specifies: `v1,` and base64 of
 * HMAC-SHA256 over `id.timestamp.body`, keyed with the decoded secret.
 */
export function sign(
  secret: string | Buffer,
  webhookId: string,
  timestampSeconds: number,
  body: string | Uint8Array,
): string {
  const key = typeof secret === 'string' ? decodeSecret(secret) : secret;
  const digest = signatureDigest(key, webhookId, timestampSeconds, body).toString('base64');
  return `v1,${digest}`;
}

/** The value of `webhook-signature`: one signature per live secret. */
export function signatureHeader(
  secrets: readonly (string | Buffer)[],
  webhookId: string,
  timestampSeconds: number,
  body: string,
): string {
  return secrets
    .map((secret) => sign(secret, webhookId, timestampSeconds, body))
    .join(' ');
}

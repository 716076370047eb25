import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ValidationError } from '../errors.js';
import { decodeSecret, signatureDigest } from '../signing.js';

// The receiver side of the Standard Webhooks scheme that the delivery
// workers sign with. Receivers install only this module, so it imports
// nothing but node:crypto and the signing helpers: no database or queue
// client.

/**
 * Request headers as servers hand them over: a WHATWG `Headers` (fetch-style
 * handlers), Node's `IncomingHttpHeaders` (node:http and the frameworks built
 * on it) or any plain object. Names are looked up in any letter case.
 */
export type WebhookHeaders =
  | { get(name: string): string | null }
  | IncomingHttpHeaders
  | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifyWebhookOptions {
  headers: WebhookHeaders;
  /**
   * The request body exactly as received. A parsed JSON object is rejected,
   * because serializing it again changes its bytes.
   */
  body: string | Uint8Array;
  /** The receiver's `whsec_` secret, or several during a rotation. */
  secret: string | readonly string[];
  /** Largest difference between `webhook-timestamp` and `now`, in seconds. */
  toleranceSeconds?: number;
  /** The current time; the system clock when absent. */
  now?: Date;
}

/** The JSON body of a delivery. */
export interface WebhookPayload<TData = unknown> {
  event_class: string;
  event_id: string;
  /** Equals the `webhook-id` header: the same on every retry, so receivers deduplicate on it. */
  delivery_id: string;
  /** When the event was created, in ISO 8601 UTC. */
  timestamp: string;
  data: TData;
}

export type WebhookVerificationErrorCode =
  /** A `webhook-*` header is absent or empty; `header` names it. */
  | 'missing_header'
  /** `webhook-id` or `webhook-timestamp` came more than once with different values. */
  | 'invalid_header'
  /** `webhook-timestamp` is not integer seconds. */
  | 'invalid_timestamp'
  /** `webhook-timestamp` is further in the past than the tolerance. */
  | 'timestamp_too_old'
  /** `webhook-timestamp` is further in the future than the tolerance. */
  | 'timestamp_too_new'
  /** No `v1,` signature matches the body with any of the secrets. */
  | 'no_matching_signature'
  /** The body is not a string, Buffer or Uint8Array, such as an object a JSON parser made. */
  | 'raw_body_required'
  /** The signature matched but the body is not the JSON of a delivery. */
  | 'invalid_payload';

/** A request that failed verification. Respond with 401 and do not process it. */
export class WebhookVerificationError extends Error {
  constructor(
    readonly code: WebhookVerificationErrorCode,
    message: string,
    /** The header at fault, for the header codes. */
    readonly header?: string,
  ) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

export const DEFAULT_TOLERANCE_SECONDS = 300;

const ID_HEADER = 'webhook-id';
const TIMESTAMP_HEADER = 'webhook-timestamp';
const SIGNATURE_HEADER = 'webhook-signature';

/** Base64 of a 32-byte HMAC-SHA256 digest. */
const V1_SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Verifies a delivery's Standard Webhooks signature and timestamp and
 * returns its parsed body. Throws WebhookVerificationError when the request
 * must be rejected, and ValidationError when a secret or the tolerance is
 * malformed, which is a configuration error rather than a bad request.
 *
 * Every `v1,` signature in `webhook-signature` is compared with the digest
 * of every secret in constant time, so a rotation works with the old and
 * the new secret listed. Signatures of other versions (`v1a,`) are ignored.
 */
export function verifyWebhook<TData = unknown>(options: VerifyWebhookOptions): WebhookPayload<TData> {
  const body = requireRawBody(options.body);
  const keys = decodeSecrets(options.secret);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new ValidationError(
      'toleranceSeconds',
      `must be a number of seconds of 0 or more, got ${String(tolerance)}`,
    );
  }

  const id = singleHeader(options.headers, ID_HEADER);
  const timestampText = singleHeader(options.headers, TIMESTAMP_HEADER);
  const signatures = readHeader(options.headers, SIGNATURE_HEADER).join(' ');
  if (signatures.trim() === '') throw missingHeader(SIGNATURE_HEADER);

  checkTimestamp(timestampText, tolerance, options.now ?? new Date());

  const candidates = v1Signatures(signatures);
  if (candidates.length === 0) {
    throw new WebhookVerificationError(
      'no_matching_signature',
      `${SIGNATURE_HEADER}: has no "v1," signature, which this verifier checks; other versions are ignored`,
      SIGNATURE_HEADER,
    );
  }
  const matched = keys.some((key) => {
    const expected = signatureDigest(key, id, timestampText, body);
    return candidates.some((candidate) => timingSafeEqual(candidate, expected));
  });
  if (!matched) {
    throw new WebhookVerificationError(
      'no_matching_signature',
      `${SIGNATURE_HEADER}: none of its ${candidates.length} "v1," signature(s) matches the body with the ${keys.length} secret(s) given; check the secret and that the body is passed exactly as received`,
      SIGNATURE_HEADER,
    );
  }
  return parsePayload<TData>(body);
}

function requireRawBody(body: unknown): string | Uint8Array {
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  const got = body === null ? 'null' : Array.isArray(body) ? 'an array' : `${typeof body === 'object' ? 'an' : 'a'} ${typeof body}`;
  throw new WebhookVerificationError(
    'raw_body_required',
    `body: must be the raw request body as a string, Buffer or Uint8Array, got ${got}. A parsed body cannot be verified, because serializing it again changes its bytes; read the body before any JSON parser (in Fastify, a content-type parser with parseAs: "buffer")`,
  );
}

function decodeSecrets(secret: string | readonly string[]): Buffer[] {
  if (typeof secret === 'string') return [decodeSecret(secret, 'secret')];
  if (!Array.isArray(secret) || secret.length === 0) {
    throw new ValidationError('secret', 'must be a "whsec_" secret or a non-empty array of them');
  }
  return secret.map((value, index) => decodeSecret(value, `secret[${index}]`));
}

/** Returns every value of a header, looked up in any letter case. */
function readHeader(headers: WebhookHeaders, name: string): string[] {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const value = (headers as { get(name: string): string | null }).get(name);
    return value === null ? [] : [value];
  }
  const values: string[] = [];
  for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
    if (key.toLowerCase() !== name) continue;
    if (typeof value === 'string') values.push(value);
    else if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'string') values.push(item);
    }
  }
  return values;
}

/** Returns a header that must have one value, failing when it is absent, empty or ambiguous. */
function singleHeader(headers: WebhookHeaders, name: string): string {
  const values = [...new Set(readHeader(headers, name).map((value) => value.trim()))].filter(
    (value) => value !== '',
  );
  if (values.length === 0) throw missingHeader(name);
  if (values.length > 1) {
    throw new WebhookVerificationError(
      'invalid_header',
      `${name}: came ${values.length} times with different values; a delivery sends it once`,
      name,
    );
  }
  return values[0]!;
}

function missingHeader(name: string): WebhookVerificationError {
  return new WebhookVerificationError(
    'missing_header',
    `${name}: header is missing or empty; every delivery carries webhook-id, webhook-timestamp and webhook-signature`,
    name,
  );
}

function checkTimestamp(text: string, toleranceSeconds: number, now: Date): void {
  if (!/^\d{1,15}$/.test(text)) {
    throw new WebhookVerificationError(
      'invalid_timestamp',
      `${TIMESTAMP_HEADER}: must be integer seconds since the Unix epoch, got ${JSON.stringify(text.slice(0, 40))}`,
      TIMESTAMP_HEADER,
    );
  }
  const ageSeconds = Math.floor(now.getTime() / 1000) - Number(text);
  if (ageSeconds > toleranceSeconds) {
    throw new WebhookVerificationError(
      'timestamp_too_old',
      `${TIMESTAMP_HEADER}: is ${ageSeconds} s old, more than the tolerance of ${toleranceSeconds} s (toleranceSeconds); a replayed request or a receiver clock that is ahead`,
      TIMESTAMP_HEADER,
    );
  }
  if (-ageSeconds > toleranceSeconds) {
    throw new WebhookVerificationError(
      'timestamp_too_new',
      `${TIMESTAMP_HEADER}: is ${-ageSeconds} s in the future, more than the tolerance of ${toleranceSeconds} s (toleranceSeconds); check the receiver's clock`,
      TIMESTAMP_HEADER,
    );
  }
}

/**
 * Returns the decoded `v1,` signatures of a `webhook-signature` value, whose
 * entries are separated by spaces. A comma that ends an entry is dropped,
 * because it comes from a repeated header that a proxy or framework joined
 * with ", ".
 */
function v1Signatures(header: string): Buffer[] {
  const signatures: Buffer[] = [];
  for (const token of header.split(/\s+/)) {
    const entry = token.endsWith(',') ? token.slice(0, -1) : token;
    if (!entry.startsWith('v1,')) continue;
    const encoded = entry.slice(3);
    // Buffer.from skips characters that are not base64, so the form is
    // checked first; a digest of another length can never match.
    if (V1_SIGNATURE_PATTERN.test(encoded)) signatures.push(Buffer.from(encoded, 'base64'));
  }
  return signatures;
}

function parsePayload<TData>(body: string | Uint8Array): WebhookPayload<TData> {
  const text = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    throw new WebhookVerificationError(
      'invalid_payload',
      'body: the signature matches but the body is not JSON; the sender is not this webhook system',
    );
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || !('data' in payload)) {
    throw new WebhookVerificationError(
      'invalid_payload',
      'body: the signature matches but the body is not a delivery object with "event_class", "event_id", "delivery_id", "timestamp" and "data"',
    );
  }
  return payload as WebhookPayload<TData>;
}

import { ValidationError } from './errors.js';

/**
 * Maximum nesting of objects and arrays in event data. The GitHub payloads in
 * @octokit/webhooks-examples 7.6.1 nest at most 7 levels. The limit keeps the
 * recursive check and JSON.stringify well inside Node's default stack, and
 * below CPython 3.11's json.loads, which fails at about 1000 levels.
 */
export const MAX_DATA_DEPTH = 512;

/**
 * Serializes event data to JSON text after checking that every value
 * survives the trip unchanged. JSON.stringify would throw on a BigInt and
 * silently turn NaN, functions and undefined into null or nothing; integers
 * past 2^53 would already have been rounded by JSON.parse.
 */
export function serializeEventData(
  data: unknown,
  maxBytes: number,
  field = 'data',
): string {
  assertJsonValue(data, field, new Set(), 0, field);
  const text = JSON.stringify(data);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) {
    throw new ValidationError(
      field,
      `must be at most ${maxBytes} bytes as JSON, got ${bytes} bytes`,
    );
  }
  return text;
}

function assertJsonValue(
  value: unknown,
  path: string,
  seen: Set<object>,
  depth: number,
  field: string,
) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new ValidationError(path, `must be a finite number, got ${value}`);
      }
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new ValidationError(
          path,
          `must be an integer from -${Number.MAX_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER} to be kept exactly (got a number that rounds to ${value}); send larger integers as strings`,
        );
      }
      return;
    case 'bigint':
      throw new ValidationError(
        path,
        'is a BigInt, which JSON cannot carry exactly; send it as a string',
      );
    case 'object':
      break;
    default:
      throw new ValidationError(
        path,
        `must be a JSON value (object, array, string, number, boolean or null), got ${typeof value}`,
      );
  }
  if (value === null) return;
  if (seen.has(value)) {
    throw new ValidationError(path, 'is a circular reference');
  }
  if (depth >= MAX_DATA_DEPTH) {
    // The error names the field because a path this deep is thousands of
    // characters long.
    throw new ValidationError(
      field,
      `must nest objects and arrays at most ${MAX_DATA_DEPTH} levels deep`,
    );
  }
  seen.add(value);
  if (Array.isArray(value)) {
    // An index loop, because forEach skips the holes of a sparse array and
    // JSON.stringify would turn them into null.
    for (let index = 0; index < value.length; index++) {
      assertJsonValue(value[index], `${path}[${index}]`, seen, depth + 1, field);
    }
  } else {
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      throw new ValidationError(
        path,
        `must be a plain object, got an instance of ${value.constructor?.name ?? 'an unknown class'}`,
      );
    }
    for (const [key, item] of Object.entries(value)) {
      assertJsonValue(item, `${path}.${key}`, seen, depth + 1, field);
    }
  }
  seen.delete(value);
}

/** Stored fields that a delivery's body is built from. */
export interface EnvelopeFields {
  readonly eventClass: string;
  readonly eventId: string;
  readonly deliveryId: string;
  readonly timeCreated: Date;
  /** The event data as stored: JSON text. */
  readonly dataJson: string;
}

/**
 * Builds the request body of a delivery. It depends only on stored fields,
 * so every try of one delivery sends the same bytes; the stored data text is
 * spliced in as it is.
 */
export function buildEnvelope(fields: EnvelopeFields): string {
  return (
    `{"event_class":${JSON.stringify(fields.eventClass)}` +
    `,"event_id":${JSON.stringify(fields.eventId)}` +
    `,"delivery_id":${JSON.stringify(fields.deliveryId)}` +
    `,"timestamp":${JSON.stringify(fields.timeCreated.toISOString())}` +
    `,"data":${fields.dataJson}}`
  );
}

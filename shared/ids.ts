import { ValidationError } from './errors.js';

export const UUID_RULE = 'must be a UUID such as "0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e"';

export const UUID_PATTERN =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Throws a ValidationError unless `value` is a UUID; returns it lowercased. */
export function assertUuid(value: unknown, field: string): string {
  if (typeof value !== 'string' || !UUID_PATTERN.test(value)) {
    throw new ValidationError(field, `${UUID_RULE}, got ${JSON.stringify(value)}`);
  }
  return value.toLowerCase();
}

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

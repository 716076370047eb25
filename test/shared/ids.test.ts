import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { assertUuid, isUuid } from '../../shared/ids.js';

const UUID = '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e';

const NOT_UUIDS: readonly unknown[] = [
  '',
  'not-a-uuid',
  '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7',
  '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e0',
  '0b8f7a525c1e4d3a9a612f0e3c9d1b7e',
  '{0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e}',
  ' 0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e',
  '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e\n',
  '0g8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e',
  42,
  null,
  undefined,
];

describe('assertUuid', () => {
  it('returns a lower-case UUID', () => {
    expect(assertUuid(UUID, 'id')).toBe(UUID);
  });

  it('lowercases an upper-case UUID', () => {
    expect(assertUuid(UUID.toUpperCase(), 'id')).toBe(UUID);
  });

  it.each(NOT_UUIDS.map((value) => [JSON.stringify(value) ?? 'undefined', value]))(
    'rejects %s',
    (label, value) => {
      let caught: unknown;
      try {
        assertUuid(value, 'event_id');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ValidationError);
      expect((caught as ValidationError).field).toBe('event_id');
      expect((caught as Error).message).toBe(
        `event_id: must be a UUID such as "0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e", got ${label}`,
      );
    },
  );
});

describe('isUuid', () => {
  it('accepts both cases', () => {
    expect(isUuid(UUID)).toBe(true);
    expect(isUuid(UUID.toUpperCase())).toBe(true);
  });

  it.each(NOT_UUIDS.filter((value): value is string => typeof value === 'string'))(
    'rejects %j',
    (value) => {
      expect(isUuid(value)).toBe(false);
    },
  );
});

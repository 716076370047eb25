import { describe, expect, test } from 'vitest';
import { errorKey, LogThrottle } from '../../shared/log-throttle.js';

function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });
}

describe('LogThrottle', () => {
  test('admits one line per interval', () => {
    const throttle = new LogThrottle(1_000);
    expect(throttle.admit('a', 0)).toBe(0);
    expect(throttle.admit('a', 10)).toBeNull();
    expect(throttle.admit('a', 999)).toBeNull();
    expect(throttle.admit('a', 1_000), 'lines skipped since the last one').toBe(2);
    expect(throttle.admit('a', 1_500)).toBeNull();
  });

  test('keeps keys apart', () => {
    const throttle = new LogThrottle(1_000);
    expect(throttle.admit('a', 0)).toBe(0);
    expect(throttle.admit('b', 1)).toBe(0);
    expect(throttle.admit('a', 2)).toBeNull();
  });

  test('drops oldest key past maximum', () => {
    const throttle = new LogThrottle(1_000, 2);
    throttle.admit('a', 0);
    throttle.admit('b', 0);
    throttle.admit('c', 0);
    expect(throttle.admit('a', 1), 'a forgotten key is admitted again').toBe(0);
    expect(throttle.admit('c', 1)).toBeNull();
  });
});

describe('errorKey', () => {
  test('one key for connection errors', () => {
    const keys = new Set([
      errorKey(socketError('ECONNREFUSED')),
      errorKey(socketError('ECONNRESET')),
      errorKey(new Error('Connection terminated unexpectedly')),
      errorKey(new Error('timeout exceeded when trying to connect')),
      errorKey(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })),
    ]);
    expect([...keys]).toEqual(['database connection']);
  });

  test('other errors keep their message', () => {
    const duplicate = Object.assign(new Error('duplicate key value'), { code: '23505' });
    expect(errorKey(duplicate)).toBe('23505:Error:duplicate key value');
    expect(errorKey(new TypeError('x is undefined'))).toBe(':TypeError:x is undefined');
    expect(errorKey('plain text')).toBe('plain text');
  });
});

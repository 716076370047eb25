import { afterEach, describe, expect, it } from 'vitest';
import {
  clampRetryAfter,
  parseRetryAfterMs,
  retryDelayMs,
} from '../../shared/backoff.js';

const SCHEDULE = [5_000, 300_000];

/** 1994-11-06 08:49:00 UTC, 37 s before the example date of the HTTP RFCs. */
const NOW = Date.UTC(1994, 10, 6, 8, 49, 0);

describe('retryDelayMs', () => {
  it('subtracts full jitter at random 0', () => {
    expect(retryDelayMs(SCHEDULE, 1, 0.2, () => 0)).toBe(4_000);
  });

  it('keeps the delay at random 0.5', () => {
    expect(retryDelayMs(SCHEDULE, 1, 0.2, () => 0.5)).toBe(5_000);
  });

  it('adds half jitter at random 0.75', () => {
    expect(retryDelayMs(SCHEDULE, 1, 0.2, () => 0.75)).toBe(5_500);
  });

  it('adds nearly full jitter at 0.99', () => {
    expect(retryDelayMs(SCHEDULE, 1, 0.2, () => 0.99)).toBe(5_980);
  });

  it('uses the entry of each retry', () => {
    expect(retryDelayMs(SCHEDULE, 2, 0.2, () => 0)).toBe(240_000);
  });

  it('ignores random without jitter', () => {
    expect(retryDelayMs(SCHEDULE, 2, 0, () => 0.9)).toBe(300_000);
  });

  it('keeps a zero delay at zero', () => {
    expect(retryDelayMs([0], 1, 0.2, () => 0)).toBe(0);
  });

  it('stays within jitter bounds', () => {
    for (let i = 0; i < 1_000; i++) {
      const delay = retryDelayMs(SCHEDULE, 1, 0.2);
      expect(delay).toBeGreaterThanOrEqual(4_000);
      expect(delay).toBeLessThanOrEqual(6_000);
    }
  });

  it.each([0, 3, -1, 1.5, NaN])('rejects retry %s', (retry) => {
    expect(() => retryDelayMs(SCHEDULE, retry, 0.2, () => 0.5)).toThrow(
      new RangeError(`retry ${retry} is outside the schedule of 2 retries`),
    );
  });

  it('rejects any retry of an empty schedule', () => {
    expect(() => retryDelayMs([], 1, 0.2)).toThrow(RangeError);
  });
});

describe('parseRetryAfterMs', () => {
  const originalTimeZone = process.env.TZ;

  afterEach(() => {
    if (originalTimeZone === undefined) delete process.env.TZ;
    else process.env.TZ = originalTimeZone;
  });

  it('returns null without a header', () => {
    expect(parseRetryAfterMs(undefined, NOW)).toBeNull();
  });

  it.each([
    ['120', 120_000],
    ['0', 0],
    [' 5 ', 5_000],
    ['86400', 86_400_000],
    ['2024', 2_024_000],
  ])('reads %j seconds', (header, expected) => {
    expect(parseRetryAfterMs(header, NOW)).toBe(expected);
  });

  it.each([
    ['IMF-fixdate', 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['RFC 850 date', 'Sunday, 06-Nov-94 08:49:37 GMT'],
    ['asctime date', 'Sun Nov  6 08:49:37 1994'],
  ])('reads an %s', (_label, header) => {
    expect(parseRetryAfterMs(header, NOW)).toBe(37_000);
  });

  it('reads asctime as GMT', () => {
    process.env.TZ = 'America/New_York';
    expect(parseRetryAfterMs('Sun Nov  6 08:49:37 1994', NOW)).toBe(37_000);
  });

  it('returns zero for a past date', () => {
    expect(parseRetryAfterMs('Sat, 05 Nov 1994 08:49:37 GMT', NOW)).toBe(0);
  });

  it.each([
    '',
    '   ',
    'soon',
    '1.5',
    '-1',
    '+5',
    '5.5',
    '1e3',
    '0x10',
    'Infinity',
    '12abc',
    'foo 1',
    '1 2',
    'Nov 1994',
    'tomorrow 3',
    '2024-01-01T00:00:00Z',
    'Sun, 06 Nov 1994 08:49:37 PST',
    'Sun, 06 Nov 1994 08:49:37',
    'Sun, 32 Nov 1994 08:49:37 GMT',
  ])('returns null for %j', (header) => {
    expect(parseRetryAfterMs(header, NOW)).toBeNull();
  });
});

describe('clampRetryAfter', () => {
  it.each([
    [5_000, 0, 5_000],
    [5_000, 1_000, 5_000],
    [5_000, 5_000, 5_000],
    [5_000, 7_000, 7_000],
    [5_000, 10_000, 10_000],
    [5_000, 60_000, 10_000],
    [5_000, 1e23, 10_000],
    [0, 1_000, 0],
  ])('clamps %i and %i to %i', (scheduled, retryAfter, expected) => {
    expect(clampRetryAfter(scheduled, retryAfter)).toBe(expected);
  });
});

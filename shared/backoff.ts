/**
 * Returns the delay before retry number `retry` (1 for the first retry), in
 * ms, with up to ±`jitter` of it added at random so that the retries of many
 * deliveries that failed together do not arrive together.
 */
export function retryDelayMs(
  scheduleMs: readonly number[],
  retry: number,
  jitter: number,
  random: () => number = Math.random,
): number {
  const base = scheduleMs[retry - 1];
  if (base === undefined) {
    throw new RangeError(
      `retry ${retry} is outside the schedule of ${scheduleMs.length} retries`,
    );
  }
  const factor = 1 + jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base * factor));
}

const DAY = '(Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const DAY_LONG = '(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';

// The three HTTP-date forms that HTTP/1.1 recipients must accept (RFC 2068,
// section 3.3.1). Date.parse alone is too lenient: V8 reads "1.5" or "foo 1"
// as dates in 2001.
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} ${TIME} GMT$`);
const RFC850_DATE = new RegExp(`^${DAY_LONG}, \\d{2}-${MONTH}-\\d{2} ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ( \\d|\\d{2}) ${TIME} \\d{4}$`);

/**
 * Parses a Retry-After header (delay in seconds or an HTTP date) into ms from
 * `now`. Returns null when the header is absent or in neither form.
 */
export function parseRetryAfterMs(
  header: string | undefined,
  now: number = Date.now(),
): number | null {
  if (header === undefined) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  let date: number;
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) {
    date = Date.parse(text);
  } else if (ASCTIME_DATE.test(text)) {
    // HTTP reads asctime as GMT, but Date.parse reads a date without a zone
    // as local time.
    date = Date.parse(`${text} GMT`);
  } else {
    return null;
  }
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - now);
}

/**
 * Honours a receiver's Retry-After within bounds: never sooner than the
 * scheduled delay, never later than twice it, so that a receiver can slow
 * us down but cannot park a delivery for days.
 */
export function clampRetryAfter(scheduledMs: number, retryAfterMs: number) {
  return Math.min(Math.max(retryAfterMs, scheduledMs), 2 * scheduledMs);
}

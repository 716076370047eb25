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

/**
 * Parses a Retry-After header (seconds or an HTTP date) into ms from `now`;
 * returns null when it is absent or unreadable.
 */
export function parseRetryAfterMs(
  header: string | undefined,
  now: number = Date.now(),
): number | null {
  if (header === undefined) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
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

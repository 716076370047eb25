import { isConnectionError } from './db/connection-errors.js';

/**
 * Limits a repeated log line to one per interval for each key. While a
 * dependency is down, every job fails the same way within milliseconds, and
 * one line per job would flood the log. The first line of a key is logged
 * at once. Lines within the interval are only counted, and the next line
 * that is logged reports that count.
 */
export class LogThrottle {
  private readonly windows = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 1_000,
    /** Maximum number of keys kept; past it, the oldest key is dropped. */
    private readonly maxKeys = 100,
  ) {}

  /**
   * Returns null when a line with this key was logged less than the interval
   * ago, so the caller should skip it. Otherwise returns how many lines of
   * the key were skipped since the last one, for the caller to log.
   */
  admit(key: string, now = Date.now()): number | null {
    const window = this.windows.get(key);
    if (window !== undefined && now - window.loggedAt < this.intervalMs) {
      window.suppressed += 1;
      return null;
    }
    const suppressed = window?.suppressed ?? 0;
    this.windows.delete(key);
    this.windows.set(key, { loggedAt: now, suppressed: 0 });
    if (this.windows.size > this.maxKeys) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
    return suppressed;
  }
}

/**
 * Returns a throttle key for an error: one key for every error that means
 * PostgreSQL cannot be reached (refused, reset, timed out or lost, which
 * one outage produces in turn), else its code and message.
 */
export function errorKey(error: unknown): string {
  if (isConnectionError(error)) return 'database connection';
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return `${typeof code === 'string' ? code : ''}:${error.name}:${error.message}`;
}

import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../../shared/queues.js';

/**
 * Starts a run when neither a run of this period happened nor a run is
 * going on. KEYS[1] marks the period and KEYS[2] the run in progress.
 * ARGV[1] is the run's token, ARGV[2] the period marker's lifetime and
 * ARGV[3] the run lease, both in ms. Returns 1 when the run may start.
 */
const ACQUIRE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1`;

/**
 * Extends the lease of a run in progress. KEYS[1] is the run key, ARGV[1]
 * the token and ARGV[2] the lease in ms. Returns 1 while the key has the
 * token, 2 when the key had vanished (a flush of Redis) and was set again
 * for the token, and 0 when it has another run's token.
 */
const RENEW_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
if holder ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** Deletes the run key if it still has the token. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** Lease of a run in progress, renewed every RUN_RENEW_MS while it runs. */
const RUN_LEASE_MS = 5_000;
const RUN_RENEW_MS = 1_000;

export type PeriodLockRun<T> = { ran: false } | { ran: true; value: T };

/** Receives the lock's problems that do not stop the run, for the caller to log. */
export type PeriodLockWarning = (message: string, error?: unknown) => void;

/**
 * A Redis lock that lets one of many processes run a periodic task once per
 * period, each process on a timer of its own, and no two runs at once
 * unless renewals fail for longer than the lease.
 *
 * Two keys do this. The period marker `key` lives `holdMs`, the period less
 * a margin for timer drift between processes, so the first timer to fire
 * after it expired, in any process, starts the next run. The run key
 * `key:running` is held while the task runs. Its lease is renewed every
 * second and it is deleted when the task ends, so a run longer than the
 * period delays the next one instead of overlapping it. A process that dies
 * mid-run stops renewing, and its run key expires after RUN_LEASE_MS. Both
 * keys share `key`'s hash tag, if it has one, so they sit in one Redis
 * Cluster slot.
 */
export class PeriodLock {
  readonly holdMs: number;
  private readonly runKey: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    periodMs: number,
  ) {
    // 100 ms absorbs timer drift between processes. Periods under 1 s get a
    // tenth of the period instead, so that the marker ends before the next
    // period starts.
    this.holdMs = periodMs - Math.min(100, Math.floor(periodMs / 10));
    this.runKey = `${key}:running`;
  }

  /**
   * Runs `task` when no run happened within the current period and none is
   * going on, and returns whether it ran and its result. `warn` receives
   * failed renewals and releases, and once a run key that another run took
   * meanwhile, which only happens when renewals failed for longer than the
   * lease.
   */
  async runIfFree<T>(task: () => Promise<T>, warn: PeriodLockWarning): Promise<PeriodLockRun<T>> {
    const token = randomUUID();
    const acquired = await this.redis.eval(
      ACQUIRE_SCRIPT,
      2,
      this.key,
      this.runKey,
      token,
      String(this.holdMs),
      String(RUN_LEASE_MS),
    );
    if (acquired !== 1) return { ran: false };

    let lost = false;
    const renew = setInterval(() => {
      this.redis
        .eval(RENEW_SCRIPT, 1, this.runKey, token, String(RUN_LEASE_MS))
        .then((held) => {
          if (held === 0 && !lost) {
            lost = true;
            warn('lock taken by another run during this run');
          }
        })
        // The lease outlasts several missed renewals.
        .catch((error: unknown) => warn('renewing the lock failed; retrying in 1 s', error));
    }, RUN_RENEW_MS);
    try {
      return { ran: true, value: await task() };
    } finally {
      clearInterval(renew);
      await this.redis
        .eval(RELEASE_SCRIPT, 1, this.runKey, token)
        .catch((error: unknown) =>
          warn(`releasing the lock failed; it expires within ${RUN_LEASE_MS} ms`, error),
        );
    }
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../shared/logger.js';
import { DelayJobError } from './delay-job.js';
import type { ClaimedDelivery, DeliveryStore } from './delivery-store.js';
import {
  hasLimits,
  type LimitDecision,
  type ReceiverLimiter,
  type ReceiverLimits,
} from './rate-limit.js';

/**
 * Maximum wait for a receiver limit that a worker spends in process, in ms.
 * Moving the job to the delayed set and back costs a lease release, a new
 * claim and BullMQ's delay in running a due job. Each took tens of ms on a
 * loaded 2-core machine, so a shorter wait is cheaper done in place.
 */
const IN_PROCESS_WAIT_MS = 50;
/** Maximum waits in process per run, so that a job keeps its worker slot for about 200 ms at most. */
const MAX_IN_PROCESS_WAITS = 4;

export interface LimitedSendDependencies {
  store: DeliveryStore;
  limiter: ReceiverLimiter;
}

export interface LimitedSendOptions {
  /**
   * The job ran before, so it may be back from a wait for a limit and keeps
   * its place in line (see ReceiverLimiter.acquire).
   */
  afterDelay?: boolean;
}

/**
 * Runs `send` for a claimed delivery within its receiver's rate and
 * in-flight limits. A receiver without limits costs no Redis call. When a
 * limit is reached, gives the lease back and throws DelayJobError with the
 * time the limiter computed, so the job waits in BullMQ instead of holding
 * a worker slot. Waits of up to IN_PROCESS_WAIT_MS are spent in process.
 * The in-flight slot is freed when `send` settles, whether it returns or
 * throws. A slot that cannot be freed (Redis unreachable, or the process
 * killed) expires by itself (see ReceiverLimiter).
 */
export async function sendWithinLimits<T>(
  deps: LimitedSendDependencies,
  delivery: ClaimedDelivery,
  log: Logger,
  send: () => Promise<T>,
  options: LimitedSendOptions = {},
): Promise<T> {
  const limits = { ratePerSecond: delivery.rateLimitPerSecond, maxInFlight: delivery.maxInFlight };
  if (!hasLimits(limits)) return send();

  let decision;
  try {
    decision = await acquireWithShortWaits(deps.limiter, delivery.rxId, limits, options);
  } catch (error) {
    // Nothing was sent, so another run may claim the delivery at once.
    await deps.store.release(delivery.id).catch(() => {});
    throw error;
  }
  if (decision.kind === 'delayed') {
    await deps.store.release(delivery.id);
    log.debug(
      { limit: decision.limit, delayMs: decision.delayMs, ...limits },
      'receiver limit reached; delivery delayed',
    );
    throw new DelayJobError(
      `receiver ${delivery.rxId} reached its ${decision.limit === 'rate' ? 'rate' : 'in-flight'} limit`,
      decision.delayMs,
    );
  }

  log.debug(
    { ...limits, admittedAtMs: decision.permit.redisTimeMs },
    'receiver limits admitted the request',
  );
  try {
    return await send();
  } finally {
    // Not awaited: on the worker's connection a command waits out a Redis
    // outage, and the attempt row must not wait for it.
    void deps.limiter.release(decision.permit).catch((error: unknown) => {
      log.warn({ err: error }, 'freeing the in-flight slot failed; it expires by itself');
    });
  }
}

/**
 * Requests admission from the limiter, and requests it again after each
 * wait of at most IN_PROCESS_WAIT_MS, up to MAX_IN_PROCESS_WAITS times. A
 * request that waited counts as back from a wait, so it keeps its place in
 * line.
 */
async function acquireWithShortWaits(
  limiter: ReceiverLimiter,
  rxId: string,
  limits: ReceiverLimits,
  options: LimitedSendOptions,
): Promise<LimitDecision> {
  let afterDelay = options.afterDelay === true;
  for (let waits = 0; ; waits++) {
    const decision = await limiter.acquire(rxId, limits, { afterDelay });
    if (decision.kind === 'admitted') return decision;
    if (decision.delayMs > IN_PROCESS_WAIT_MS || waits >= MAX_IN_PROCESS_WAITS) return decision;
    await sleep(decision.delayMs);
    afterDelay = true;
  }
}

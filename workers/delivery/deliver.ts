import type { Logger } from '../../shared/logger.js';
import {
  clampRetryAfter,
  parseRetryAfterMs,
  retryDelayMs,
} from '../../shared/backoff.js';
import { buildEnvelope } from '../../shared/payload.js';
import { signatureHeader } from '../../shared/signing.js';
import { DelayJobError } from './delay-job.js';
import type { ClaimedDelivery, DeliveryStore } from './delivery-store.js';
import { sendWithinLimits, type LimitedSendOptions } from './limited-send.js';
import { claimInOrder, handOn, type OrderedDelivery } from './ordering.js';
import type { ReceiverLimiter } from './rate-limit.js';
import { disabledDeliveryReason } from './receiver-disabling.js';
import type { AttemptOutcome, HttpSender } from './send-request.js';

/**
 * Thrown to make BullMQ run the job again after `retryDelayMs`. The delivery
 * worker's backoff strategy reads the delay from it.
 */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly retryDelayMs: number,
  ) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

export interface DeliverDependencies {
  store: DeliveryStore;
  sender: HttpSender;
  logger: Logger;
  retryScheduleMs: readonly number[];
  retryJitter: number;
  /** Claims and hands on the deliveries of ordered receivers. */
  ordering: OrderedDelivery;
  /** Applies receivers' rate and in-flight limits. */
  limiter: ReceiverLimiter;
  /** Waits between tries of the attempt-row write; tests shorten it. */
  recordRetryDelaysMs?: readonly number[];
}

export type DeliverOutcome =
  | 'delivered'
  | 'failed'
  | 'retry_scheduled'
  | 'already_finished'
  | 'not_found'
  | 'ended_without_request'
  | 'lease_lost'
  | 'not_head';

/**
 * Runs one attempt of one delivery: claims it, signs and sends the request,
 * and records the attempt. Throws RetryLaterError when the delivery needs
 * another attempt later, and DelayJobError when it may not be sent yet
 * (a receiver limit, or ordering); returns when the job is done.
 */
export async function deliver(
  deps: DeliverDependencies,
  deliveryId: string,
  options: LimitedSendOptions = {},
): Promise<DeliverOutcome> {
  const claim = await claimInOrder(deps.store, deps.ordering, deliveryId);
  if (claim.kind === 'not_found') {
    deps.logger.warn({ deliveryId }, 'delivery not found; dropping its job');
    return 'not_found';
  }
  if (claim.kind === 'finished') return 'already_finished';
  if (claim.kind === 'leased') {
    throw new RetryLaterError(
      `delivery ${deliveryId} is leased by another worker`,
      claim.leaseExpiresInMs + 1_000,
    );
  }
  if (claim.kind === 'not_head') {
    // Not a failure: the delivery before it hands on when it ends.
    deps.logger.debug(
      { deliveryId, headId: claim.headId },
      'ordered delivery waits for an earlier delivery of its receiver; the job ends without an attempt',
    );
    return 'not_head';
  }
  if (claim.kind === 'wait') {
    deps.logger.debug({ deliveryId, delayMs: claim.delayMs, reason: claim.reason }, 'ordered delivery delayed');
    throw new DelayJobError(claim.reason, claim.delayMs);
  }

  const delivery = claim.delivery;
  const log = deps.logger.child({
    deliveryId: delivery.id,
    eventId: delivery.eventId,
    rxId: delivery.rxId,
  });
  // A probe reports the receiver's state at the time of the request, so it
  // gets one attempt and no retries.
  const budget = delivery.triggeredBy === 'probe' ? 1 : deps.retryScheduleMs.length + 1;

  const reasonToSkip = skipReason(delivery, budget);
  if (reasonToSkip !== null) {
    await deps.store.finishWithoutAttempt(delivery.id, reasonToSkip);
    log.info({ reason: reasonToSkip }, 'delivery ended without a request');
    await handOn(deps.ordering, delivery, delivery.attempts, log);
    return 'ended_without_request';
  }

  const attempt = delivery.attempts + 1;
  const body = buildEnvelope({
    eventClass: delivery.eventClass,
    eventId: delivery.eventId,
    deliveryId: delivery.id,
    timeCreated: delivery.eventTimeCreated,
    dataJson: delivery.dataJson,
  });
  // A fresh timestamp on every try lets receivers keep a short tolerance;
  // the body and webhook-id stay the same, so receivers can deduplicate.
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    'webhook-id': delivery.id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signatureHeader(
      delivery.secrets,
      delivery.id,
      timestamp,
      body,
    ),
    'x-webhook-event-class': delivery.eventClass,
    'x-webhook-event-id': delivery.eventId,
    'x-webhook-delivery-id': delivery.id,
    'x-webhook-attempt': String(attempt),
  };
  const outcome = await sendWithinLimits(
    deps,
    delivery,
    log,
    () => deps.sender.send(delivery.endpoint, headers, body),
    options,
  );
  const final =
    outcome.result === 'succeeded'
      ? 'delivered'
      : attempt >= budget
        ? 'failed'
        : null;

  const recorded = await recordWithRetries(deps, delivery, outcome, final, log);
  const fields = {
    attempt,
    maxAttempts: budget,
    result: outcome.result,
    status: outcome.responseStatus,
    durationMs: outcome.responseDurationMs,
    reason: outcome.unreachableReason ?? undefined,
    location: outcome.location,
  };
  if (!recorded) {
    log.warn(fields, 'lease lost before the attempt was recorded; another worker owns the delivery');
    return 'lease_lost';
  }
  await handOn(deps.ordering, delivery, attempt, log);
  if (final === 'delivered') {
    log.info(fields, 'delivery succeeded');
    return 'delivered';
  }
  if (final === 'failed') {
    log.warn(fields, 'delivery failed: retry budget spent');
    return 'failed';
  }
  const delayMs = nextDelayMs(deps, attempt, outcome);
  log.info({ ...fields, retryInMs: delayMs }, 'attempt failed; retry scheduled');
  throw new RetryLaterError(
    `attempt ${attempt} of ${budget} failed (${outcome.result})`,
    delayMs,
  );
}

function skipReason(delivery: ClaimedDelivery, budget: number): string | null {
  if (delivery.rxDeleted) return 'receiver deleted';
  // A probe is how an operator checks whether a disabled receiver works
  // again, so it is sent all the same.
  if (delivery.rxDisabledReason !== null && delivery.triggeredBy !== 'probe') {
    return disabledDeliveryReason(delivery.rxDisabledReason);
  }
  if (delivery.secrets.length === 0) return 'receiver has no live secret';
  if (delivery.attempts >= budget) return 'retry budget spent';
  return null;
}

function nextDelayMs(
  deps: DeliverDependencies,
  attempt: number,
  outcome: AttemptOutcome,
): number {
  const scheduled = retryDelayMs(deps.retryScheduleMs, attempt, deps.retryJitter);
  const status = outcome.responseStatus;
  if (status === 429 || status === 503) {
    const retryAfter = parseRetryAfterMs(outcome.retryAfterHeader);
    if (retryAfter !== null) return clampRetryAfter(scheduled, retryAfter);
  }
  return scheduled;
}

/**
 * Retries the attempt-row write, not the request: the request was sent, and
 * sending it again because the database hiccuped would duplicate it. If every
 * try fails, the error reaches BullMQ; the lease then expires and the next
 * run sends again (one duplicate that at-least-once delivery allows).
 */
async function recordWithRetries(
  deps: DeliverDependencies,
  delivery: ClaimedDelivery,
  outcome: AttemptOutcome,
  final: 'delivered' | 'failed' | null,
  log: Logger,
): Promise<boolean> {
  const delays = deps.recordRetryDelaysMs ?? [250, 1_000, 2_000, 5_000];
  for (let index = 0; ; index++) {
    try {
      return await deps.store.recordAttempt(delivery, outcome, final);
    } catch (error) {
      const delay = delays[index];
      if (delay === undefined) throw error;
      log.warn({ err: error, retryInMs: delay }, 'writing the attempt row failed; retrying the write');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

import { processMetrics } from '../../shared/ops/metrics.js';
import { withClientSpan } from '../../shared/ops/tracing.js';
import { DeliveryStore } from './delivery-store.js';
import { HttpSender, type AttemptOutcome } from './send-request.js';

/** Seconds that each outcome's request took, from the call to send() to its outcome. */
const sendSeconds = new WeakMap<AttemptOutcome, number>();

/**
 * An HttpSender that times every request, failed ones included (their
 * outcome has no response duration), for the attempt-duration histogram.
 * While tracing runs, each request is a client span with the ids of its
 * delivery, event and attempt, and its result.
 */
export class TimedHttpSender extends HttpSender {
  override async send(...args: Parameters<HttpSender['send']>): ReturnType<HttpSender['send']> {
    const [endpoint, headers] = args;
    const attributes = {
      'http.request.method': 'POST',
      // The host only: a receiver's path or query may carry a token.
      'server.address': hostOf(endpoint),
      'webhook.delivery_id': headers['x-webhook-delivery-id'] ?? '',
      'webhook.event_id': headers['x-webhook-event-id'] ?? '',
      'webhook.event_class': headers['x-webhook-event-class'] ?? '',
      'webhook.attempt': Number(headers['x-webhook-attempt'] ?? 0),
    };
    const started = performance.now();
    const outcome = await withClientSpan('webhook attempt', attributes, () => super.send(...args), (result) => ({
      attributes: {
        'webhook.result': result.result,
        ...(result.responseStatus === null ? {} : { 'http.response.status_code': result.responseStatus }),
      },
      error: result.result === 'succeeded' ? undefined : result.unreachableReason ?? result.result,
    }));
    sendSeconds.set(outcome, (performance.now() - started) / 1000);
    return outcome;
  }
}

/**
 * A DeliveryStore that counts what it writes: an attempt, and the
 * delivery's final state, only once the attempt row is written, so that
 * `webhook_delivery_attempts_total` matches the rows of
 * webhook_delivery_attempt that this process wrote. A write that lost the
 * lease or failed counts nothing.
 */
export class MeteredDeliveryStore extends DeliveryStore {
  override async recordAttempt(...args: Parameters<DeliveryStore['recordAttempt']>): Promise<boolean> {
    const recorded = await super.recordAttempt(...args);
    if (!recorded) return recorded;
    const [, outcome, final] = args;
    const metrics = processMetrics();
    metrics.attempts.inc({ result: outcome.result });
    const seconds = sendSeconds.get(outcome) ?? (outcome.responseDurationMs ?? 0) / 1000;
    metrics.attemptDuration.observe({ result: outcome.result }, seconds);
    if (final !== null) metrics.deliveries.inc({ result: final });
    return recorded;
  }

  override async finishWithoutAttempt(
    ...args: Parameters<DeliveryStore['finishWithoutAttempt']>
  ): Promise<void> {
    await super.finishWithoutAttempt(...args);
    processMetrics().deliveries.inc({ result: 'ended_without_request' });
  }
}

/**
 * Returns the host of an endpoint, or '' when it does not parse, so that the
 * span never throws where HttpSender.send turns a bad URL into an
 * unreachable attempt.
 */
function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).hostname;
  } catch {
    return '';
  }
}

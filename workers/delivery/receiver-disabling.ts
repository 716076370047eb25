import type { Logger } from '../../shared/logger.js';

/**
 * Settings of automatic receiver disabling, which the delivery store applies
 * in the statement that records attempts.
 */
export interface ReceiverDisabling {
  /**
   * How long every attempt to a receiver must keep failing before the
   * receiver is disabled, in ms; 0 turns that off. A 410 Gone disables at
   * once either way.
   */
  readonly disableAfterMs: number;
  /** Called once per receiver that a recorded attempt disabled. */
  onDisabled(rxId: string, reason: string): void;
}

/** Disabling that only reacts to 410 Gone, for stores built without settings. */
export const GONE_ONLY: ReceiverDisabling = { disableAfterMs: 0, onDisabled: () => {} };

/** Returns the disabling settings of a worker that logs every disabled receiver at warn. */
export function loggedReceiverDisabling(disableAfterMs: number, logger: Logger): ReceiverDisabling {
  return {
    disableAfterMs,
    onDisabled(rxId, reason) {
      logger.warn({ rxId, reason }, 'receiver disabled');
    },
  };
}

/** Failure reason of a delivery that ended without a request because its receiver is disabled. */
export function disabledDeliveryReason(rxDisabledReason: string): string {
  return `receiver disabled (${rxDisabledReason})`;
}

/**
 * Builds the reason for disabling the receiver row `r` after the attempts in
 * `o`, or NULL when it stays as it is. A receiver that is already disabled
 * or deleted keeps its state. The Standard Webhooks specification advises
 * senders to disable an endpoint that responds with 410 Gone.
 */
function disableReasonSql(disableAfterParam: string): string {
  const afterMs = `${disableAfterParam}::bigint`;
  return `CASE
      WHEN r.time_disabled IS NOT NULL OR r.time_deleted IS NOT NULL THEN NULL
      WHEN o.gone THEN 'endpoint answered 410 Gone'
      WHEN NOT o.succeeded AND ${afterMs} > 0
           AND r.time_failing_since <= now() - make_interval(secs => ${afterMs} / 1000.0)
        THEN 'every attempt failed since '
          || to_char(r.time_failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
          || ', for longer than RECEIVER_DISABLE_AFTER_MS (' || ${afterMs} || ' ms)'
    END`;
}

/**
 * CTEs for the attempt-recording statement that keep webhook_rx's failure
 * tracking. They read the CTEs `input` (id, result, status) and `updated`
 * (id, rx_id: the deliveries whose attempt is written) and define
 * `rx_disabled` (id, reason): the receivers that this statement disabled.
 * `disableAfterParam` is the placeholder of RECEIVER_DISABLE_AFTER_MS, such
 * as `$10`.
 *
 * A receiver row is written only when its state changes. A failure sets
 * time_failing_since while it is NULL, and a success clears it while it is
 * set, so a receiver that keeps succeeding or keeps failing costs no row
 * write per attempt. A success in the same batch as failures counts as a
 * success. Rows are locked in id order, so two batches that change the same
 * receivers cannot deadlock, and FOR NO KEY UPDATE does not block the
 * foreign key checks of deliveries being inserted for the receiver.
 */
export function receiverFailureCtes(disableAfterParam: string): string {
  const reason = disableReasonSql(disableAfterParam);
  return `
  rx_outcome AS (
    SELECT u.rx_id,
      bool_or(i.result = 'succeeded') AS succeeded,
      bool_or(i.status = 410) AS gone
    FROM updated u JOIN input i ON i.id = u.id
    GROUP BY u.rx_id
  ), rx_change AS (
    SELECT r.id, o.succeeded, ${reason} AS disable_reason
    FROM rx_outcome o JOIN webhook_rx r ON r.id = o.rx_id
    -- A success with time_failing_since set, or a failure with it NULL.
    WHERE o.succeeded = (r.time_failing_since IS NOT NULL)
       OR ${reason} IS NOT NULL
    ORDER BY r.id
    FOR NO KEY UPDATE OF r
  ), rx_updated AS (
    UPDATE webhook_rx r
    SET time_failing_since =
          CASE WHEN c.succeeded THEN NULL ELSE COALESCE(r.time_failing_since, now()) END,
        time_disabled =
          COALESCE(r.time_disabled, CASE WHEN c.disable_reason IS NOT NULL THEN now() END),
        disabled_reason = COALESCE(r.disabled_reason, c.disable_reason),
        time_modified =
          CASE WHEN c.disable_reason IS NOT NULL THEN now() ELSE r.time_modified END
    FROM rx_change c
    WHERE r.id = c.id
    RETURNING r.id, c.disable_reason
  ), rx_disabled AS (
    SELECT id, disable_reason AS reason FROM rx_updated WHERE disable_reason IS NOT NULL
  )`;
}

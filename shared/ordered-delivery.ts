// SQL and job ids of ordered delivery that the delivery worker and the
// dispatch role's sweeper both use.

/**
 * Returns the ORDER BY list of one receiver's deliveries, table alias
 * `alias`: event time, event id, then the delivery's own time and id. It is
 * the column order of lookup_webhook_pending_deliveries_by_rx_event after
 * rx_id, so a query that orders by it and takes the first row reads one
 * index entry. Head subqueries spell the ORDER BY out, so that the planner
 * walks the index instead of scanning the receiver's rows for any earlier
 * one.
 */
export function headOrder(alias: string): string {
  return `${alias}.event_time_created, ${alias}.event_id, ${alias}.time_created, ${alias}.id`;
}

/** Returns the job id under which the delivery worker wakes the head delivery `deliveryId`. */
export function wakeJobId(deliveryId: string): string {
  return `${deliveryId}.head`;
}

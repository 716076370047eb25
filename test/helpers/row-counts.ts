import type pg from 'pg';

/** Row counts of every table, for checking that a request wrote nothing. */
export async function countRows(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<Record<string, number>>(`
    SELECT
      (SELECT count(*)::int FROM webhook_rx) AS webhook_rx,
      (SELECT count(*)::int FROM webhook_secret) AS webhook_secret,
      (SELECT count(*)::int FROM webhook_rx_subscription) AS webhook_rx_subscription,
      (SELECT count(*)::int FROM webhook_event) AS webhook_event,
      (SELECT count(*)::int FROM webhook_delivery) AS webhook_delivery,
      (SELECT count(*)::int FROM webhook_delivery_attempt) AS webhook_delivery_attempt`);
  return rows[0]!;
}

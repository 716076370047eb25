import type { Config } from '../../shared/config.js';
import { DeliveryQueues, workerConnection } from '../../shared/queues.js';

/** Opens every delivery shard of `config`, runs `read`, and closes them again. */
async function withDeliveryQueues<T>(
  config: Config,
  read: (queues: DeliveryQueues) => Promise<T>,
): Promise<T> {
  const connection = workerConnection(config);
  const queues = new DeliveryQueues(connection, config);
  try {
    return await read(queues);
  } finally {
    await queues.close();
    await connection.quit();
  }
}

/**
 * Returns the BullMQ state of a delivery's job, such as 'waiting', 'delayed',
 * 'active' or 'failed', looked up in every delivery shard. The state is
 * 'unknown' when no shard has a job with the delivery's id, as after a
 * completed job was removed.
 */
export async function deliveryJobState(config: Config, deliveryId: string): Promise<string> {
  return withDeliveryQueues(config, async (queues) => {
    for (const queue of queues.shards) {
      const state = await queue.getJobState(deliveryId);
      if (state !== 'unknown') return state;
    }
    return 'unknown';
  });
}

/** Counts the jobs of all delivery shards per state. */
export async function deliveryJobCounts(config: Config): Promise<Record<string, number>> {
  return withDeliveryQueues(config, async (queues) => {
    const totals: Record<string, number> = {};
    for (const queue of queues.shards) {
      const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'failed', 'completed');
      for (const [state, count] of Object.entries(counts)) {
        totals[state] = (totals[state] ?? 0) + count;
      }
    }
    return totals;
  });
}

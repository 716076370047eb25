import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../../shared/config.js';
import { DELIVERY_QUEUE } from '../../shared/queues.js';

/**
 * Returns the BullMQ state of a delivery's job, such as 'waiting', 'delayed',
 * 'active' or 'failed'. The state is 'unknown' when no job with the
 * delivery's id exists, as after a completed job was removed.
 */
export async function deliveryJobState(config: Config, deliveryId: string): Promise<string> {
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(DELIVERY_QUEUE, { connection, prefix: config.queuePrefix });
  try {
    return await queue.getJobState(deliveryId);
  } finally {
    await queue.close();
    await connection.quit();
  }
}

/** Counts the delivery queue's jobs per state. */
export async function deliveryJobCounts(config: Config): Promise<Record<string, number>> {
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(DELIVERY_QUEUE, { connection, prefix: config.queuePrefix });
  try {
    return await queue.getJobCounts('wait', 'active', 'delayed', 'failed', 'completed');
  } finally {
    await queue.close();
    await connection.quit();
  }
}

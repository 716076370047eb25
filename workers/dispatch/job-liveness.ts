import type { Queue } from 'bullmq';
import type { RedisClient } from '../../shared/queues.js';

/** Entries read per LRANGE call, which bounds how long one call keeps Redis busy. */
const LIST_CHUNK = 10_000;

type Liveness = 'absent' | 'stale' | 'live' | 'suspect';

/**
 * Returns the ids among `ids` whose job in `queue` is absent or will never
 * run, after removing each such leftover job, because BullMQ ignores an add
 * whose job id already exists.
 *
 * A job is live when its hash contains data and a creation time, it has not
 * finished, and its id sits in one of the queue's lists or sorted sets. The
 * hash alone proves nothing: keys deleted one at a time, as when an
 * operator deletes one install's keys with SCAN and DEL, can leave a hash
 * that no list points to (it would never run) or a list entry without a hash
 * (a worker then runs it with no data, and it fails). A job that a worker
 * holds locked is never removed; it is looked at again on the next sweep.
 */
export async function findIdsWithoutLiveJob(queue: Queue, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const redis = (await queue.getBackend().client) as unknown as RedisClient;
  const liveness = await readLiveness(redis, queue, ids);
  const suspects = ids.filter((id) => liveness.get(id) === 'suspect');
  if (suspects.length > 0) {
    const listed = await readListedIds(redis, queue);
    for (const id of suspects) {
      if (listed.has(id)) {
        liveness.set(id, 'live');
        continue;
      }
      // The lists were read in chunks while workers moved jobs between
      // them, so an id missing from the copy is checked again atomically.
      const state = await queue.getJobState(id);
      liveness.set(id, state === 'unknown' ? 'stale' : 'live');
    }
  }

  const without: string[] = [];
  for (const id of ids) {
    const state = liveness.get(id);
    if (state === 'absent') {
      without.push(id);
    } else if (state === 'stale' && (await queue.remove(id)) === 1) {
      without.push(id);
    }
  }
  return without;
}

/**
 * Classifies each id by its job hash and the delayed and prioritized sets,
 * in one pipeline. Ids that only a list can vouch for come back as suspect.
 */
async function readLiveness(
  redis: RedisClient,
  queue: Queue,
  ids: readonly string[],
): Promise<Map<string, Liveness>> {
  const pipeline = redis.pipeline();
  for (const id of ids) {
    pipeline.exists(queue.toKey(id));
    pipeline.hmget(queue.toKey(id), 'timestamp', 'finishedOn', 'data');
    pipeline.zscore(queue.keys.delayed!, id);
    pipeline.zscore(queue.keys.prioritized!, id);
  }
  const replies = (await pipeline.exec()) ?? [];
  for (const [error] of replies) {
    if (error) throw error;
  }
  const result = new Map<string, Liveness>();
  for (const [index, id] of ids.entries()) {
    const exists = replies[index * 4]![1] as number;
    const [timestamp, finishedOn, data] = replies[index * 4 + 1]![1] as (string | null)[];
    const delayed = replies[index * 4 + 2]![1] as string | null;
    const prioritized = replies[index * 4 + 3]![1] as string | null;
    if (exists === 0) {
      result.set(id, 'absent');
    } else if (finishedOn !== null || timestamp === null || data === null) {
      result.set(id, 'stale');
    } else if (delayed !== null || prioritized !== null) {
      result.set(id, 'live');
    } else {
      result.set(id, 'suspect');
    }
  }
  return result;
}

/** Reads every id in the queue's active, wait and paused lists. */
async function readListedIds(redis: RedisClient, queue: Queue): Promise<Set<string>> {
  const listed = new Set<string>();
  // Wait before active: a job moves from wait to active, so reading in that
  // order finds it at least once unless it moves again in between.
  for (const key of [queue.keys.wait!, queue.keys.active!, queue.keys.paused!]) {
    for (let start = 0; ; start += LIST_CHUNK) {
      const chunk = await redis.lrange(key, start, start + LIST_CHUNK - 1);
      for (const id of chunk) listed.add(id);
      if (chunk.length < LIST_CHUNK) break;
    }
  }
  return listed;
}

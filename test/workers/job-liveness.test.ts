// Which jobs the sweeper treats as live. The leftovers here are the states
// that deleting one install's keys one at a time (SCAN and DEL) leaves behind.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { findIdsWithoutLiveJob } from '../../workers/dispatch/job-liveness.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let redis: Redis;
let queue: Queue;

beforeAll(async () => {
  env = await createTestEnv();
  redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  queue = new Queue('liveness', { connection: redis, prefix: env.queuePrefix });
});

afterAll(async () => {
  await queue?.close();
  await redis?.quit();
  await env?.dispose();
});

/** Adds a job. Ids start with "job-" because an id such as "delayed" is also the name of a queue key. */
async function addJob(id: string, delay = 0) {
  await queue.add('liveness', { id }, { jobId: id, delay });
}

async function exists(id: string): Promise<boolean> {
  return (await redis.exists(queue.toKey(id))) === 1;
}

describe('findIdsWithoutLiveJob', () => {
  test('returns id without job', async () => {
    expect(await findIdsWithoutLiveJob(queue, ['job-absent'])).toEqual(['job-absent']);
  });

  test('keeps waiting and delayed jobs', async () => {
    await addJob('job-waiting');
    await addJob('job-delayed', 60_000);
    expect(await findIdsWithoutLiveJob(queue, ['job-waiting', 'job-delayed'])).toEqual([]);
    expect(await queue.getJobState('job-waiting')).toBe('waiting');
    expect(await queue.getJobState('job-delayed')).toBe('delayed');
  });

  test('removes finished job', async () => {
    await addJob('job-finished');
    await redis.lrem(queue.keys.wait!, 0, 'job-finished');
    await redis.hset(queue.toKey('job-finished'), 'finishedOn', String(Date.now()));
    await redis.zadd(queue.keys.failed!, Date.now(), 'job-finished');

    expect(await findIdsWithoutLiveJob(queue, ['job-finished'])).toEqual(['job-finished']);
    expect(await exists('job-finished')).toBe(false);
    expect(await redis.zscore(queue.keys.failed!, 'job-finished')).toBeNull();
  });

  test('removes hash without data', async () => {
    // What moveToActive leaves when a list entry outlived its hash.
    await redis.hset(queue.toKey('job-no-data'), 'processedOn', String(Date.now()), 'ats', '1');
    expect(await findIdsWithoutLiveJob(queue, ['job-no-data'])).toEqual(['job-no-data']);
    expect(await exists('job-no-data')).toBe(false);
  });

  test('removes hash in no list', async () => {
    await addJob('job-orphan');
    await redis.lrem(queue.keys.wait!, 0, 'job-orphan');
    expect(await queue.getJobState('job-orphan')).toBe('unknown');

    expect(await findIdsWithoutLiveJob(queue, ['job-orphan'])).toEqual(['job-orphan']);
    expect(await exists('job-orphan')).toBe(false);
    // Adding the id again now makes a job that runs.
    await addJob('job-orphan');
    expect(await queue.getJobState('job-orphan')).toBe('waiting');
  });

  test('keeps locked leftover', async () => {
    await addJob('job-locked');
    await redis.lrem(queue.keys.wait!, 0, 'job-locked');
    await redis.set(`${queue.toKey('job-locked')}:lock`, 'some-worker-token', 'PX', 60_000);

    expect(await findIdsWithoutLiveJob(queue, ['job-locked'])).toEqual([]);
    expect(await exists('job-locked')).toBe(true);
  });

  test('classifies a mixed batch', async () => {
    await addJob('job-mixed-live');
    await addJob('job-mixed-orphan');
    await redis.lrem(queue.keys.wait!, 0, 'job-mixed-orphan');
    const result = await findIdsWithoutLiveJob(queue, ['job-mixed-live', 'job-mixed-orphan', 'job-mixed-absent']);
    expect(result).toEqual(['job-mixed-orphan', 'job-mixed-absent']);
  });
});

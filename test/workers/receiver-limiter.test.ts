// ReceiverLimiter against the shared Redis, under this file's own key
// prefix: rate spacing, the line of rejected requests, the in-flight slots
// and the expiry of slots never released.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  receiverLimitKeys,
  ReceiverLimiter,
  type LimitDecision,
  type LimitPermit,
} from '../../workers/delivery/rate-limit.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let redis: Redis;
let settings: { queuePrefix: string; redisClusterNodes: [] };

beforeAll(async () => {
  env = await createTestEnv();
  redis = new Redis(env.redisUrl);
  settings = { queuePrefix: env.queuePrefix, redisClusterNodes: [] };
});

afterAll(async () => {
  redis?.disconnect();
  await env?.dispose();
});

/**
 * A decision with the clock readings around the call. The script reads
 * Redis's clock, the same clock as Date.now() on this machine, somewhere
 * between `before` and `after`.
 */
interface TimedDecision {
  decision: LimitDecision;
  before: number;
  after: number;
}

async function timedAcquire(
  limiter: ReceiverLimiter,
  rxId: string,
  limits: Parameters<ReceiverLimiter['acquire']>[1],
  options: Parameters<ReceiverLimiter['acquire']>[2] = {},
): Promise<TimedDecision> {
  const before = Date.now();
  const decision = await limiter.acquire(rxId, limits, options);
  return { decision, before, after: Date.now() };
}

/** Returns the range of clock times at which a delayed request may try again. */
function wakeRange({ decision, before, after }: TimedDecision): [number, number] {
  if (decision.kind !== 'delayed') throw new Error(`expected a delay, got ${JSON.stringify(decision)}`);
  // The script rounds the delay up to whole ms.
  return [before + decision.delayMs - 1, after + decision.delayMs];
}

/** Checks that `later` can be `gapMs` after `earlier`, given the uncertainty of both. */
function expectGap(earlier: [number, number], later: [number, number], gapMs: number, label: string) {
  expect(later[1] - earlier[0], `${label}: largest possible gap`).toBeGreaterThanOrEqual(gapMs);
  expect(later[0] - earlier[1], `${label}: smallest possible gap`).toBeLessThanOrEqual(gapMs);
}

function permitOf(decision: LimitDecision): LimitPermit {
  if (decision.kind !== 'admitted') throw new Error(`expected admission, got ${JSON.stringify(decision)}`);
  return decision.permit;
}

describe('receiver limiter', () => {
  test('rate spaces requests', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 10_000);
    const rxId = randomUUID();
    const limits = { ratePerSecond: 5, maxInFlight: null };
    const calls: TimedDecision[] = [];
    for (let index = 0; index < 4; index++) calls.push(await timedAcquire(limiter, rxId, limits));
    const decisions = calls.map((call) => call.decision);

    // The first goes at once, and the others get wake times one interval
    // (200 ms) apart.
    expect(decisions.map((decision) => decision.kind)).toEqual(['admitted', 'delayed', 'delayed', 'delayed']);
    for (const decision of decisions.slice(1)) {
      expect(decision).toMatchObject({ kind: 'delayed', limit: 'rate' });
    }
    const admittedAt: [number, number] = [calls[0]!.before, calls[0]!.after];
    const wakes = calls.slice(1).map(wakeRange);
    expectGap(admittedAt, wakes[0]!, 200, 'first admission to second wake');
    expectGap(wakes[0]!, wakes[1]!, 200, 'second to third wake');
    expectGap(wakes[1]!, wakes[2]!, 200, 'third to fourth wake');
    // Nothing held an in-flight slot, so release has nothing to free.
    expect(permitOf(decisions[0]!).slot).toBeNull();
  });

  test('request back from a wait keeps its place', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 10_000);
    const rxId = randomUUID();
    const keys = receiverLimitKeys(settings, rxId);
    const limits = { ratePerSecond: 5, maxInFlight: null };
    const first = await timedAcquire(limiter, rxId, limits);
    permitOf(first.decision);
    await new Promise((resolve) => setTimeout(resolve, 30));

    // Back from a wait but too early: it comes back one interval after the
    // admission and takes no new place in line.
    const back = await timedAcquire(limiter, rxId, limits, { afterDelay: true });
    expect(back.decision).toMatchObject({ kind: 'delayed', limit: 'rate' });
    expectGap([first.before, first.after], wakeRange(back), 200, 'first admission to the wake');
    expect(await redis.hget(keys.state, 'next_wake'), 'next place in line').toBeNull();

    // A new request takes a place in line.
    expect((await limiter.acquire(rxId, limits)).kind).toBe('delayed');
    expect(await redis.hget(keys.state, 'next_wake'), 'next place in line').not.toBeNull();
  });

  test('new request queues behind waiters', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 10_000);
    const rxId = randomUUID();
    const limits = { ratePerSecond: 5, maxInFlight: null };
    const first = await timedAcquire(limiter, rxId, limits);
    permitOf(first.decision);
    // Two waiters get places 200 and 400 ms after the first admission.
    expect((await limiter.acquire(rxId, limits)).kind).toBe('delayed');
    expect((await limiter.acquire(rxId, limits)).kind).toBe('delayed');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first.after + 210 - Date.now())));

    // The rate would allow a request now, but the second waiter's place is
    // still ahead, so a new request goes behind it.
    const late = await timedAcquire(limiter, rxId, limits);
    expect(late.decision).toMatchObject({ kind: 'delayed', limit: 'rate' });
    expectGap([first.before, first.after], wakeRange(late), 600, 'first admission to the new wake');
    // A waiter back on time is admitted.
    expect((await limiter.acquire(rxId, limits, { afterDelay: true })).kind).toBe('admitted');
  });

  test('in-flight slots are released', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 10_000);
    const rxId = randomUUID();
    const limits = { ratePerSecond: null, maxInFlight: 2 };
    const first = permitOf(await limiter.acquire(rxId, limits));
    permitOf(await limiter.acquire(rxId, limits));
    const third = await limiter.acquire(rxId, limits);
    expect(third).toMatchObject({ kind: 'delayed', limit: 'in_flight' });

    await limiter.release(first);
    expect((await limiter.acquire(rxId, limits)).kind).toBe('admitted');
    expect(await redis.zcard(receiverLimitKeys(settings, rxId).slots)).toBe(2);
    // Releasing twice frees one slot only.
    await limiter.release(first);
    expect(await redis.zcard(receiverLimitKeys(settings, rxId).slots)).toBe(2);
  });

  test('rejected requests are spaced by hold time', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 10_000);
    const rxId = randomUUID();
    const keys = receiverLimitKeys(settings, rxId);
    const limits = { ratePerSecond: null, maxInFlight: 2 };
    permitOf(await limiter.acquire(rxId, limits));
    permitOf(await limiter.acquire(rxId, limits));
    // An average hold of 400 ms over 2 slots frees one every 200 ms.
    await redis.hset(keys.state, 'hold_ms', '400');
    const calls: TimedDecision[] = [];
    for (let index = 0; index < 3; index++) calls.push(await timedAcquire(limiter, rxId, limits));
    for (const call of calls) expect(call.decision).toMatchObject({ kind: 'delayed', limit: 'in_flight' });
    const wakes = calls.map(wakeRange);
    expectGap([calls[0]!.before, calls[0]!.after], wakes[0]!, 200, 'first call to its wake');
    expectGap(wakes[0]!, wakes[1]!, 200, 'first to second wake');
    expectGap(wakes[1]!, wakes[2]!, 200, 'second to third wake');
  });

  test('unreleased slot expires', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 300);
    const rxId = randomUUID();
    const limits = { ratePerSecond: null, maxInFlight: 1 };
    permitOf(await limiter.acquire(rxId, limits));
    expect((await limiter.acquire(rxId, limits)).kind).toBe('delayed');
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await limiter.acquire(rxId, limits)).kind).toBe('admitted');
  });

  test('both limits apply together', async () => {
    const limiter = new ReceiverLimiter(redis, settings, 10_000);
    const rxId = randomUUID();
    const keys = receiverLimitKeys(settings, rxId);
    // A rate of 1000 per second lets the second request through 1 ms later.
    const limits = { ratePerSecond: 1000, maxInFlight: 1 };
    permitOf(await limiter.acquire(rxId, limits));
    const admittedAt = await redis.hget(keys.state, 'last_admitted');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await limiter.acquire(rxId, limits)).toMatchObject({ kind: 'delayed', limit: 'in_flight' });
    // A request rejected by the in-flight limit does not count as admitted.
    expect(await redis.hget(keys.state, 'last_admitted')).toBe(admittedAt);
  });

  test('keys share a hash tag on a cluster', () => {
    const rxId = '0190B2A0-0000-7000-8000-000000000001';
    const single = receiverLimitKeys({ queuePrefix: 'whk', redisClusterNodes: [] }, rxId);
    expect(single).toEqual({
      slots: 'whk:limit:0190b2a0-0000-7000-8000-000000000001:slots',
      state: 'whk:limit:0190b2a0-0000-7000-8000-000000000001:state',
    });
    const cluster = receiverLimitKeys(
      { queuePrefix: 'whk', redisClusterNodes: [{ host: '127.0.0.1', port: 7000 }] },
      rxId,
    );
    const tag = '{whk:limit:0190b2a0-0000-7000-8000-000000000001}';
    expect(cluster).toEqual({ slots: `${tag}:slots`, state: `${tag}:state` });
  });
});

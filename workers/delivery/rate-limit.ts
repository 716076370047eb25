import { randomUUID } from 'node:crypto';
import type { Config } from '../../shared/config.js';
import type { RedisClient } from '../../shared/queues.js';

/** A receiver's delivery limits over all delivery workers, where null means no limit. */
export interface ReceiverLimits {
  ratePerSecond: number | null;
  maxInFlight: number | null;
}

/** The settings that decide the limiter's key names. */
export type LimitKeySettings = Pick<Config, 'queuePrefix' | 'redisClusterNodes'>;

/** An admitted request. Pass it to `release` when the request has ended. */
export interface LimitPermit {
  readonly rxId: string;
  /** The in-flight slot's member in the slots set, or null without an in-flight limit. */
  readonly slot: string | null;
  /** performance.now() at admission, for the hold time that `release` reports. */
  readonly admittedAt: number;
  /** Redis's clock at admission, in ms since the epoch. */
  readonly redisTimeMs: number;
}

export type LimitDecision =
  | { kind: 'admitted'; permit: LimitPermit }
  | { kind: 'delayed'; delayMs: number; limit: 'rate' | 'in_flight' };

/** The Redis keys of one receiver's limiter. */
export interface ReceiverLimitKeys {
  /** Sorted set of the requests in flight, scored by the time their slot expires in ms. */
  slots: string;
  /**
   * Hash with `last_admitted` (ms), `next_wake` (ms, the next place in line)
   * and `hold_ms` (average slot hold time).
   */
  state: string;
}

/**
 * Returns the limiter keys of a receiver. On one Redis server they are
 * `<QUEUE_PREFIX>:limit:<rxId>:<name>`. On a Redis Cluster the part before
 * the name is the hash tag `{<QUEUE_PREFIX>:limit:<rxId>}`, so that the
 * script's keys share a slot and receivers spread over the masters,
 * as the queues' keys do (see queueKeyPrefix).
 */
export function receiverLimitKeys(settings: LimitKeySettings, rxId: string): ReceiverLimitKeys {
  const base = `${settings.queuePrefix}:limit:${rxId.toLowerCase()}`;
  const prefix = settings.redisClusterNodes.length === 0 ? base : `{${base}}`;
  return { slots: `${prefix}:slots`, state: `${prefix}:state` };
}

/** Returns true when the receiver has a rate or in-flight limit. */
export function hasLimits(limits: ReceiverLimits): boolean {
  return limits.ratePerSecond !== null || limits.maxInFlight !== null;
}

/** Lifetime of the state hash after its last write. */
const STATE_TTL_MS = 3_600_000;

/**
 * Hold time assumed for a receiver's slots until the first release has been
 * measured. It only spaces the retries of requests that found every slot
 * taken, so a wrong guess costs extra retries, never an extra request in
 * flight.
 */
const DEFAULT_HOLD_MS = 250;

/**
 * Admits one request or computes when to try again, atomically.
 *
 * The rate limit R = ARGV[1] admits no two requests less than I = 1000 / R
 * ms apart, so no window of 1000 ms contains more than R admissions and the
 * requests go out evenly, without bursts. A burst would let the varying
 * delay from admission to arrival push more than R requests into one second
 * at the receiver. The in-flight limit admits while fewer than ARGV[2] slots
 * are held. A slot expires ARGV[4] ms after admission, so a worker that
 * dies while holding one frees it by then. Time is Redis's clock (TIME), so
 * that the clocks of worker machines do not matter.
 *
 * A rejected request gets a place in line: a wake time of its own, the
 * earliest time the limit could admit it or `next_wake` if that is later.
 * `next_wake` then moves on by one request's share of the limit, which is
 * I or the average hold time / max in flight. The rejected requests thus
 * come back one by one at the pace the limit admits, not all at once. A
 * new request also takes a place in line while earlier ones wait.
 *
 * A request back from its wait (ARGV[6] = '1') may be late, because BullMQ
 * runs a delayed job some time after its due time. It is admitted whenever
 * the rate allows, whatever its place. When the rate rejects it, it comes
 * back I after the last admission without taking a new place, so that
 * lateness costs no place in line.
 *
 * Returns {1, Redis's clock in ms, ''} when admitted, else {0, delay in ms,
 * 'rate' or 'in_flight'}.
 */
const ACQUIRE_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local rate = tonumber(ARGV[1])
local maxInFlight = tonumber(ARGV[2])
local slotTtl = tonumber(ARGV[4])
local afterDelay = ARGV[6] == '1'
local nextWake = tonumber(redis.call('HGET', KEYS[2], 'next_wake') or '0')
local earliest = now
local spacing = 0
local limited = nil
local keepPlace = false

if rate > 0 then
  spacing = 1000 / rate
  local last = tonumber(redis.call('HGET', KEYS[2], 'last_admitted') or '0')
  if now < last + spacing then
    earliest = last + spacing
    limited = 'rate'
    keepPlace = afterDelay
  elseif not afterDelay and nextWake - spacing > now then
    -- Requests told to come back later are still waiting.
    limited = 'rate'
  end
end

if maxInFlight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local inFlight = redis.call('ZCARD', KEYS[1])
  if inFlight >= maxInFlight then
    local hold = tonumber(redis.call('HGET', KEYS[2], 'hold_ms') or ARGV[5])
    local share = hold / maxInFlight
    -- The reported limit is the one that sets the later wake time.
    if not limited or now + share >= earliest then limited = 'in_flight' end
    earliest = math.max(earliest, now + share)
    spacing = math.max(spacing, share)
    keepPlace = false
  end
end

if limited then
  local wake = earliest
  if not keepPlace then
    wake = math.max(earliest, nextWake)
    redis.call('HSET', KEYS[2], 'next_wake', wake + spacing)
    redis.call('PEXPIRE', KEYS[2], ${STATE_TTL_MS})
  end
  return {0, math.ceil(wake - now), limited}
end

if rate > 0 then
  redis.call('HSET', KEYS[2], 'last_admitted', now)
  redis.call('PEXPIRE', KEYS[2], ${STATE_TTL_MS})
end
if maxInFlight > 0 then
  redis.call('ZADD', KEYS[1], now + slotTtl, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], slotTtl + 1000)
end
return {1, now, ''}
`;

/**
 * Frees one in-flight slot and folds its hold time (ARGV[2], ms) into the
 * receiver's average, which spaces the retries of rejected requests. A slot
 * that already expired is not counted.
 */
const RELEASE_SCRIPT = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local heldMs = tonumber(ARGV[2])
  local average = tonumber(redis.call('HGET', KEYS[2], 'hold_ms') or ARGV[2])
  redis.call('HSET', KEYS[2], 'hold_ms', average * 0.8 + heldMs * 0.2)
  redis.call('PEXPIRE', KEYS[2], ${STATE_TTL_MS})
end
return 1
`;

interface LimiterCommands {
  webhookLimitAcquire(
    slots: string,
    state: string,
    ratePerSecond: number,
    maxInFlight: number,
    member: string,
    slotTtlMs: number,
    defaultHoldMs: number,
    afterDelay: number,
  ): Promise<[number, number, string]>;
  webhookLimitRelease(slots: string, state: string, member: string, heldMs: number): Promise<number>;
}

/**
 * Per-receiver rate and in-flight limits that hold across every delivery
 * process, kept in Redis. Each call is one script run, so two processes
 * cannot both take the last slot.
 */
export class ReceiverLimiter {
  private readonly commands: LimiterCommands;

  constructor(
    redis: RedisClient,
    private readonly settings: LimitKeySettings,
    /**
     * How long an in-flight slot lasts when its holder never releases it
     * (a killed process). Keep it above the attempt timeout, or a slow
     * request could lose its slot while it still runs.
     */
    private readonly slotTtlMs: number,
  ) {
    redis.defineCommand('webhookLimitAcquire', { numberOfKeys: 2, lua: ACQUIRE_SCRIPT });
    redis.defineCommand('webhookLimitRelease', { numberOfKeys: 2, lua: RELEASE_SCRIPT });
    this.commands = redis as unknown as LimiterCommands;
  }

  /**
   * Admits one request to `rxId`, or returns how long to wait before trying
   * again. Pass `afterDelay` when the request comes back from such a wait.
   */
  async acquire(
    rxId: string,
    limits: ReceiverLimits,
    options: { afterDelay?: boolean } = {},
  ): Promise<LimitDecision> {
    const keys = receiverLimitKeys(this.settings, rxId);
    const member = `${rxId}:${randomUUID()}`;
    const [admitted, delayOrTime, limit] = await this.commands.webhookLimitAcquire(
      keys.slots,
      keys.state,
      limits.ratePerSecond ?? 0,
      limits.maxInFlight ?? 0,
      member,
      this.slotTtlMs,
      DEFAULT_HOLD_MS,
      options.afterDelay === true ? 1 : 0,
    );
    if (Number(admitted) === 1) {
      return {
        kind: 'admitted',
        permit: {
          rxId,
          slot: limits.maxInFlight === null ? null : member,
          admittedAt: performance.now(),
          redisTimeMs: Number(delayOrTime),
        },
      };
    }
    return {
      kind: 'delayed',
      delayMs: Math.max(1, Number(delayOrTime)),
      limit: limit === 'rate' ? 'rate' : 'in_flight',
    };
  }

  /** Frees the in-flight slot of an admitted request. */
  async release(permit: LimitPermit): Promise<void> {
    if (permit.slot === null) return;
    const keys = receiverLimitKeys(this.settings, permit.rxId);
    const heldMs = Math.max(1, Math.round(performance.now() - permit.admittedAt));
    await this.commands.webhookLimitRelease(keys.slots, keys.state, permit.slot, heldMs);
  }
}

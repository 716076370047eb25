import type pg from 'pg';
import type { RedisClient } from '../queues.js';
import { withTimeout } from '../queues.js';
import type { ProcessMetrics } from './metrics.js';

export type DependencyState = 'ok' | 'down';

/** The body of GET /health: the state of each dependency. */
export interface HealthReport {
  postgres: DependencyState;
  redis: DependencyState;
}

/** Time that one check of one dependency may take before it counts as down, in ms. */
export const DEPENDENCY_CHECK_TIMEOUT_MS = 1_000;

/**
 * Checks whether PostgreSQL and Redis respond, for readiness endpoints and
 * the `webhook_postgres_up` and `webhook_redis_up` gauges. Each check ends
 * within DEPENDENCY_CHECK_TIMEOUT_MS whatever the dependency does. Requests
 * that arrive while a check runs share it, and a dependency whose previous
 * query still hangs counts as down without a second query, so that a
 * stopped or paused server never piles up queries.
 */
export class HealthCheck {
  private running: Promise<HealthReport> | undefined;
  private readonly pending: { postgres?: Promise<unknown>; redis?: Promise<unknown> } = {};

  constructor(
    private readonly deps: {
      pool: pg.Pool;
      redis: RedisClient;
      metrics: ProcessMetrics;
      timeoutMs?: number;
    },
  ) {}

  /** Checks both dependencies, or joins the check that is running. */
  check(): Promise<HealthReport> {
    this.running ??= this.checkBoth().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Checks Redis alone and updates `webhook_redis_up`. */
  async checkRedis(): Promise<DependencyState> {
    const state = await this.probe('redis', () => this.deps.redis.ping());
    this.deps.metrics.redisUp.set(state === 'ok' ? 1 : 0);
    return state;
  }

  /** Checks PostgreSQL alone and updates `webhook_postgres_up`. */
  async checkPostgres(): Promise<DependencyState> {
    const state = await this.probe('postgres', () => this.deps.pool.query('SELECT 1'));
    this.deps.metrics.postgresUp.set(state === 'ok' ? 1 : 0);
    return state;
  }

  private async checkBoth(): Promise<HealthReport> {
    const [postgres, redis] = await Promise.all([this.checkPostgres(), this.checkRedis()]);
    return { postgres, redis };
  }

  private async probe(name: 'postgres' | 'redis', query: () => Promise<unknown>): Promise<DependencyState> {
    if (this.pending[name] !== undefined) return 'down';
    const request = query();
    this.pending[name] = request;
    const settle = () => {
      if (this.pending[name] === request) this.pending[name] = undefined;
    };
    request.then(settle, settle);
    try {
      await withTimeout(request, this.deps.timeoutMs ?? DEPENDENCY_CHECK_TIMEOUT_MS, name);
      return 'ok';
    } catch {
      return 'down';
    }
  }
}

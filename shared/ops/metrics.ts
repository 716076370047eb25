import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client';

/**
 * The Prometheus metrics of one process. No metric carries a receiver id:
 * with thousands of receivers a per-receiver label would multiply every
 * series, and the series of a deleted receiver would stay until the process
 * restarts. Per-receiver numbers come from the attempt rows through the API.
 */
export interface ProcessMetrics {
  readonly registry: Registry;
  /** Attempt rows written, by result. */
  readonly attempts: Counter<'result'>;
  /** Time from sending a request to its outcome, by result, in seconds. */
  readonly attemptDuration: Histogram<'result'>;
  /** Deliveries that reached a final state, by how they ended. */
  readonly deliveries: Counter<'result'>;
  /** Dispatch jobs finished, by outcome. */
  readonly dispatchJobs: Counter<'outcome'>;
  /** Jobs running now in this process's workers, by role. */
  readonly jobsActive: Gauge<'role'>;
  /** Concurrency limit of this process's workers, by role. */
  readonly concurrencyLimit: Gauge<'role'>;
  /** Jobs per queue and BullMQ state, as of the last refresh. */
  readonly queueJobs: Gauge<'queue' | 'state'>;
  /** Age of the oldest event not yet dispatched, as of the last refresh. */
  readonly oldestUndispatchedAge: Gauge;
  readonly redisUp: Gauge;
  readonly postgresUp: Gauge;
  /** Rows deleted by the retention job, by table. */
  readonly retentionDeleted: Counter<'table'>;
  /** Records that the queue gauges were read from Redis now. */
  markQueueStatsRefreshed(): void;
  /** Records that the oldest-undispatched gauge was read from PostgreSQL now. */
  markDatabaseStatsRefreshed(): void;
}

/** Results of an attempt row, as the webhook_delivery_result enum names them. */
export const ATTEMPT_RESULTS = [
  'succeeded',
  'failed_http_error',
  'failed_unreachable',
  'failed_timeout',
] as const;

/**
 * Buckets of the attempt-duration histogram, in seconds: from a fast
 * loopback receiver to the default 30 s attempt timeout.
 */
const ATTEMPT_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

// A symbol in the global registry, so that two copies of this module (a
// test runner or loader that evaluates it twice) still share one set of
// metrics, and prom-client never registers a name twice.
const METRICS_KEY = Symbol.for('webhook-deliverator.process-metrics');

/**
 * Returns the metrics of this process, creating them and prom-client's
 * default process metrics on the first call only. Every role that runs in
 * the process records into the same registry.
 */
export function processMetrics(): ProcessMetrics {
  const holder = globalThis as { [METRICS_KEY]?: ProcessMetrics };
  holder[METRICS_KEY] ??= createMetrics();
  return holder[METRICS_KEY];
}

/**
 * Adds `count` rows deleted from `table` by the retention job to
 * `webhook_retention_deleted_total`.
 */
export function recordRetentionDeleted(table: string, count: number): void {
  if (count > 0) processMetrics().retentionDeleted.inc({ table }, count);
}

function createMetrics(): ProcessMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const startedAt = Date.now();
  let queueStatsAt: number | null = null;
  let databaseStatsAt: number | null = null;

  const attempts = new Counter({
    name: 'webhook_delivery_attempts_total',
    help: 'Delivery attempts recorded in webhook_delivery_attempt by this process, by result.',
    labelNames: ['result'],
    registers,
  });
  const attemptDuration = new Histogram({
    name: 'webhook_delivery_attempt_duration_seconds',
    help: 'Duration of recorded delivery attempts, from sending the request to its outcome, by result.',
    labelNames: ['result'],
    buckets: ATTEMPT_DURATION_BUCKETS,
    registers,
  });
  for (const result of ATTEMPT_RESULTS) {
    // Zero series from the start, so that rate() counts the first increment.
    attempts.inc({ result }, 0);
    attemptDuration.zero({ result });
  }
  const deliveries = new Counter({
    name: 'webhook_deliveries_total',
    help: 'Deliveries that this process brought to a final state: delivered, failed (retry budget spent) or ended_without_request (receiver deleted or without a secret).',
    labelNames: ['result'],
    registers,
  });
  for (const result of ['delivered', 'failed', 'ended_without_request']) deliveries.inc({ result }, 0);
  const dispatchJobs = new Counter({
    name: 'webhook_dispatch_jobs_total',
    help: 'Dispatch jobs that this process finished, by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const jobsActive = new Gauge({
    name: 'webhook_worker_jobs_active',
    help: 'Jobs that the workers of this process are running now, by role.',
    labelNames: ['role'],
    registers,
  });
  const concurrencyLimit = new Gauge({
    name: 'webhook_worker_concurrency',
    help: 'Jobs that the workers of this process may run at once, by role.',
    labelNames: ['role'],
    registers,
  });
  const queueJobs = new Gauge({
    name: 'webhook_queue_jobs',
    help: 'Jobs in each BullMQ queue by state, as of the last refresh (see webhook_queue_stats_age_seconds).',
    labelNames: ['queue', 'state'],
    registers,
  });
  const oldestUndispatchedAge = new Gauge({
    name: 'webhook_oldest_undispatched_event_age_seconds',
    help: 'Age of the oldest event without dispatch, 0 when there is none, as of the last refresh.',
    registers,
  });
  new Gauge({
    name: 'webhook_queue_stats_age_seconds',
    help: 'Seconds since webhook_queue_jobs was last read from Redis; until the first read, seconds since the process started.',
    registers,
    collect() {
      this.set((Date.now() - (queueStatsAt ?? startedAt)) / 1000);
    },
  });
  new Gauge({
    name: 'webhook_database_stats_age_seconds',
    help: 'Seconds since webhook_oldest_undispatched_event_age_seconds was last read from PostgreSQL; until the first read, seconds since the process started.',
    registers,
    collect() {
      this.set((Date.now() - (databaseStatsAt ?? startedAt)) / 1000);
    },
  });
  const redisUp = new Gauge({
    name: 'webhook_redis_up',
    help: '1 when the last Redis check of this process got a response within its timeout, else 0.',
    registers,
  });
  const postgresUp = new Gauge({
    name: 'webhook_postgres_up',
    help: '1 when the last PostgreSQL check of this process got a response within its timeout, else 0.',
    registers,
  });
  const retentionDeleted = new Counter({
    name: 'webhook_retention_deleted_total',
    help: 'Rows that the retention job deleted, by table.',
    labelNames: ['table'],
    registers,
  });

  return {
    registry,
    attempts,
    attemptDuration,
    deliveries,
    dispatchJobs,
    jobsActive,
    concurrencyLimit,
    queueJobs,
    oldestUndispatchedAge,
    redisUp,
    postgresUp,
    retentionDeleted,
    markQueueStatsRefreshed() {
      queueStatsAt = Date.now();
    },
    markDatabaseStatsRefreshed() {
      databaseStatsAt = Date.now();
    },
  };
}

/**
 * Wraps a job processor so that `webhook_worker_jobs_active{role}` counts
 * the jobs it runs, and sets `webhook_worker_concurrency{role}` to the
 * workers' limit.
 */
export function countActiveJobs<Args extends unknown[], Result>(
  role: string,
  concurrency: number,
  processor: (...args: Args) => Promise<Result>,
): (...args: Args) => Promise<Result> {
  const metrics = processMetrics();
  metrics.concurrencyLimit.set({ role }, concurrency);
  return async (...args) => {
    metrics.jobsActive.inc({ role });
    try {
      return await processor(...args);
    } finally {
      metrics.jobsActive.dec({ role });
    }
  };
}

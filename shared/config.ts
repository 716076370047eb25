import { BlockList, isIP } from 'node:net';

/** Settings of every role, resolved once at start-up from the environment. */
export interface Config {
  readonly databaseUrl: string;
  /** Maximum PostgreSQL connections that one process opens. */
  readonly databasePoolMax: number;
  readonly redisUrl: string;
  /**
   * Nodes of a Redis Cluster that ioredis connects to first. When the list is
   * not empty, every Redis connection is an ioredis Cluster, and `redisUrl`
   * only gives the user name, password and TLS of the nodes.
   */
  readonly redisClusterNodes: readonly RedisNode[];
  /** Prefix of every BullMQ key, so that several installs share one Redis. */
  readonly queuePrefix: string;
  /** Number of delivery queues. All deliveries of one receiver go to the same one. */
  readonly deliveryQueueShards: number;
  /** Delay before each retry, in ms; the budget is its length plus 1 attempts. */
  readonly retryScheduleMs: readonly number[];
  /** Fraction of each retry delay added or removed at random (0.2 is ±20%). */
  readonly retryJitter: number;
  readonly connectTimeoutMs: number;
  /** Limit of one HTTP attempt: connect, headers and body together. */
  readonly attemptTimeoutMs: number;
  /** How long a worker's claim on a delivery stays valid without a result. */
  readonly leaseTimeoutMs: number;
  /**
   * How long a probe request waits for the attempt result of its probe
   * delivery before it returns a timeout, in ms.
   */
  readonly probeTimeoutMs: number;
  /** Failed deliveries that one page of a bulk resend reads at most. */
  readonly resendPageSize: number;
  readonly dispatchConcurrency: number;
  readonly deliveryConcurrency: number;
  readonly apiHost: string;
  readonly apiPort: number;
  /** Bearer token that the API requires; empty turns authentication off. */
  readonly apiToken: string;
  /** Maximum size of an event's data serialized as JSON, in bytes. */
  readonly maxPayloadBytes: number;
  /** Maximum bytes of a receiver's response body kept on the attempt row. */
  readonly responseBodyLimitBytes: number;
  readonly sweepIntervalMs: number;
  /** Age after which the sweeper re-enqueues an event or delivery. */
  readonly sweepGraceMs: number;
  /**
   * How long every attempt to a receiver must keep failing before the
   * receiver is disabled, in ms; 0 turns that off. A 410 Gone response
   * disables it at once whatever this is.
   */
  readonly receiverDisableAfterMs: number;
  /** Age in days after which finished events, deliveries and attempts are deleted; 0 keeps them. */
  readonly retentionDays: number;
  /** How often the retention job runs, in ms, over all dispatch processes. */
  readonly retentionIntervalMs: number;
  /** Deliveries or events that one retention statement deletes at most. */
  readonly retentionBatchSize: number;
  /**
   * BullMQ's lockDuration: how long a worker's lock on a running job lasts
   * without renewal. A job whose worker died is taken back after it expires.
   */
  readonly jobLockDurationMs: number;
  /** BullMQ's stalledInterval: how often workers look for jobs whose lock expired. */
  readonly stalledIntervalMs: number;
  readonly shutdownGraceMs: number;
  /** Networks that deliveries may reach although they are private. */
  readonly allowedPrivateNetworks: readonly string[];
  readonly bullBoardPath: string;
  /**
   * Path at which browsers reach Bull Board, when a reverse proxy adds a
   * prefix that it strips before forwarding; `bullBoardPath` otherwise.
   */
  readonly bullBoardPublicPath: string;
  /** Address of the health and metrics server of a process; see `healthPort`. */
  readonly healthHost: string;
  /** Port of the health and metrics server of a process; 0 turns it off. */
  readonly healthPort: number;
  /** How often the background timer reads queue depths and Redis reachability for /metrics, in ms. */
  readonly metricsRefreshMs: number;
  /** Maximum time the API waits for a whole request, headers and body, in ms. */
  readonly apiRequestTimeoutMs: number;
  /**
   * URL that traces are sent to with OTLP over HTTP, such as
   * `http://collector:4318/v1/traces`; empty turns tracing off.
   */
  readonly otelTracesEndpoint: string;
  /**
   * How long the API keeps an Idempotency-Key of POST /v1/events with its
   * first response, in ms.
   */
  readonly idempotencyKeyTtlMs: number;
  readonly logLevel: string;
}

/** Address of one Redis Cluster node. */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** A setting that is invalid; the message names the variable and the rule. */
export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/**
 * The Standard Webhooks recommendation, which Svix follows: a first try at
 * once, then retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
 */
export const DEFAULT_RETRY_SCHEDULE_MS = [
  5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

/**
 * Five days: Svix disables an endpoint when all attempts to it failed for
 * 5 days (https://docs.svix.com/retries, "Disabling failing endpoints").
 */
export const DEFAULT_RECEIVER_DISABLE_AFTER_MS = 5 * 24 * 3_600_000;

/**
 * Largest delay that Node's timers accept, in ms. A longer setTimeout fires
 * after 1 ms instead, so a longer timeout would end every attempt at once.
 */
const MAX_TIMER_MS = 2_147_483_647;

/** pino's standard levels, plus "silent", which turns logging off. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

type Env = Record<string, string | undefined>;

function readString(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

function readInteger(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  }
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(
      name,
      `must be between ${min} and ${max}, got ${value}`,
    );
  }
  return value;
}

function readUrl(env: Env, name: string, fallback: string, schemes: string[]) {
  const value = readString(env, name, fallback);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // The value may hold a password, and this message reaches the logs.
    const shown = value.replace(/\/\/[^/@]*@/, '//***@');
    throw new ConfigError(name, `must be a URL, got "${shown}"`);
  }
  if (!schemes.includes(url.protocol)) {
    throw new ConfigError(
      name,
      `must use ${schemes.join(' or ')}, got "${url.protocol}"`,
    );
  }
  return value;
}

function readHost(env: Env, name = 'API_HOST'): string {
  const host = readString(env, name, '127.0.0.1');
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(bare)) {
    throw new ConfigError(
      name,
      `must be an IP address or host name such as "0.0.0.0" or "127.0.0.1", got "${host}"`,
    );
  }
  return bare;
}

/**
 * Reads the OTLP/HTTP traces endpoint the way the OpenTelemetry SDKs do:
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT with `/v1/traces` appended. OTEL_SDK_DISABLED=true
 * turns tracing off.
 */
function readTracesEndpoint(env: Env): string {
  if (readString(env, 'OTEL_SDK_DISABLED', '').toLowerCase() === 'true') return '';
  const traces = readString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '');
  if (traces !== '') return readUrl(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '', ['http:', 'https:']);
  const base = readString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', '');
  if (base === '') return '';
  const url = readUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', '', ['http:', 'https:']);
  return `${url.replace(/\/+$/, '')}/v1/traces`;
}

function readRetrySchedule(env: Env): number[] {
  const name = 'RETRY_SCHEDULE_MS';
  const raw = env[name];
  // Empty means the default, as for every other variable, so that a blank
  // line in an env file cannot turn retries off; "none" does that.
  if (raw === undefined || raw.trim() === '') return [...DEFAULT_RETRY_SCHEDULE_MS];
  if (raw.trim().toLowerCase() === 'none') return [];
  return raw.split(',').map((part) => {
    const text = part.trim();
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new ConfigError(
        name,
        `must be comma-separated delays in ms such as "1000,5000", or "none" for no retries, got "${raw}"`,
      );
    }
    return Number(text);
  });
}

function readClusterNodes(env: Env): RedisNode[] {
  const name = 'REDIS_CLUSTER_NODES';
  const raw = env[name] ?? '';
  const entries = raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  return entries.map((entry) => {
    // An IPv6 address needs brackets, because its colons would otherwise
    // run into the one before the port.
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(entry);
    const host = match?.[1] ?? match?.[2] ?? '';
    const port = Number(match?.[3]);
    const validHost = match?.[1] !== undefined ? isIP(host) === 6 : host !== '';
    if (match === null || !validHost || port < 1 || port > 65_535) {
      throw new ConfigError(
        name,
        `must be comma-separated host:port pairs such as "127.0.0.1:7000,127.0.0.1:7001" ([::1]:7000 for IPv6), got "${entry}"`,
      );
    }
    return { host, port };
  });
}

function readNetworks(env: Env): string[] {
  const name = 'ALLOWED_PRIVATE_NETWORKS';
  const raw = env[name] ?? '';
  const networks = raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  for (const network of networks) {
    // A strict prefix: Number() would read "10.0.0.0/" as /0, which allows
    // every address.
    const match = /^([^/]+)\/(\d{1,3})$/.exec(network);
    const address = match?.[1] ?? '';
    const family = isIP(address);
    const bits = Number(match?.[2]);
    const maxBits = family === 6 ? 128 : 32;
    if (match === null || family === 0 || bits > maxBits) {
      throw new ConfigError(
        name,
        `must be comma-separated CIDRs such as "127.0.0.0/8,::1/128", got "${network}"`,
      );
    }
    // BlockList rejects some forms that the pattern above accepts.
    new BlockList().addSubnet(address, bits, family === 6 ? 'ipv6' : 'ipv4');
  }
  return networks;
}

/** Reads and checks every setting; throws ConfigError on the first bad one. */
export function loadConfig(env: Env = process.env): Config {
  const attemptTimeoutMs = readInteger(
    env,
    'ATTEMPT_TIMEOUT_MS',
    30_000,
    1,
    MAX_TIMER_MS,
  );
  const queuePrefix = readString(env, 'QUEUE_PREFIX', 'whk');
  if (!/^[A-Za-z0-9_{}:-]+$/.test(queuePrefix)) {
    throw new ConfigError(
      'QUEUE_PREFIX',
      `may contain only letters, digits, "_", "-", ":", "{" and "}", got "${queuePrefix}"`,
    );
  }
  const redisClusterNodes = readClusterNodes(env);
  // In cluster mode each queue's prefix becomes the hash tag
  // "{<QUEUE_PREFIX>:<queue>}", which needs a prefix without braces of its own.
  if (redisClusterNodes.length > 0 && /[{}]/.test(queuePrefix)) {
    const bare = queuePrefix.replace(/[{}]/g, '');
    throw new ConfigError(
      'QUEUE_PREFIX',
      `must not contain "{" or "}" when REDIS_CLUSTER_NODES is set, because every queue gets its own hash tag such as "{${bare}:dispatch}"; got "${queuePrefix}", use "${bare}"`,
    );
  }
  const retryJitterPercent = readInteger(env, 'RETRY_JITTER_PERCENT', 20, 0, 100);
  const bullBoardPath = readString(env, 'BULL_BOARD_PATH', '/admin/queues');
  if (!/^\/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$/.test(bullBoardPath)) {
    throw new ConfigError(
      'BULL_BOARD_PATH',
      `must be a path such as "/admin/queues", got "${bullBoardPath}"`,
    );
  }
  const bullBoardPublicPath = readString(env, 'BULL_BOARD_PUBLIC_PATH', bullBoardPath);
  if (!/^\/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$/.test(bullBoardPublicPath)) {
    throw new ConfigError(
      'BULL_BOARD_PUBLIC_PATH',
      `must be a path such as "/ops/admin/queues", got "${bullBoardPublicPath}"`,
    );
  }
  const logLevel = readString(env, 'LOG_LEVEL', 'info');
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`,
    );
  }
  const config: Config = {
    databaseUrl: readUrl(
      env,
      'DATABASE_URL',
      'postgresql://root@127.0.0.1:5432/webhooks',
      ['postgresql:', 'postgres:'],
    ),
    databasePoolMax: readInteger(env, 'DATABASE_POOL_MAX', 10, 1, 1000),
    redisUrl: readUrl(env, 'REDIS_URL', 'redis://127.0.0.1:6379', [
      'redis:',
      'rediss:',
    ]),
    redisClusterNodes,
    queuePrefix,
    deliveryQueueShards: readInteger(env, 'DELIVERY_QUEUE_SHARDS', 1, 1, 256),
    retryScheduleMs: readRetrySchedule(env),
    retryJitter: retryJitterPercent / 100,
    connectTimeoutMs: readInteger(
      env,
      'CONNECT_TIMEOUT_MS',
      10_000,
      1,
      MAX_TIMER_MS,
    ),
    attemptTimeoutMs,
    leaseTimeoutMs: readInteger(
      env,
      'LEASE_TIMEOUT_MS',
      attemptTimeoutMs * 2,
      attemptTimeoutMs + 1,
    ),
    // The attempt's own limit plus room for the job to reach a worker.
    probeTimeoutMs: readInteger(
      env,
      'PROBE_TIMEOUT_MS',
      attemptTimeoutMs + 5_000,
      1,
      MAX_TIMER_MS,
    ),
    resendPageSize: readInteger(env, 'RESEND_PAGE_SIZE', 500, 1, 10_000),
    dispatchConcurrency: readInteger(env, 'DISPATCH_CONCURRENCY', 10, 1, 10_000),
    deliveryConcurrency: readInteger(env, 'DELIVERY_CONCURRENCY', 50, 1, 10_000),
    apiHost: readHost(env),
    apiPort: readInteger(env, 'API_PORT', 3000, 0, 65_535),
    apiToken: readString(env, 'API_TOKEN', ''),
    maxPayloadBytes: readInteger(env, 'MAX_PAYLOAD_BYTES', 262_144, 2),
    responseBodyLimitBytes: readInteger(
      env,
      'RESPONSE_BODY_LIMIT_BYTES',
      65_536,
      0,
    ),
    sweepIntervalMs: readInteger(
      env,
      'SWEEP_INTERVAL_MS',
      10_000,
      100,
      MAX_TIMER_MS,
    ),
    sweepGraceMs: readInteger(env, 'SWEEP_GRACE_MS', 10_000, 0),
    receiverDisableAfterMs: readInteger(
      env,
      'RECEIVER_DISABLE_AFTER_MS',
      DEFAULT_RECEIVER_DISABLE_AFTER_MS,
      0,
    ),
    retentionDays: readInteger(env, 'RETENTION_DAYS', 30, 0, 36_500),
    retentionIntervalMs: readInteger(
      env,
      'RETENTION_INTERVAL_MS',
      3_600_000,
      1_000,
      MAX_TIMER_MS,
    ),
    retentionBatchSize: readInteger(env, 'RETENTION_BATCH_SIZE', 1_000, 1, 100_000),
    jobLockDurationMs: readInteger(
      env,
      'JOB_LOCK_DURATION_MS',
      30_000,
      1_000,
      MAX_TIMER_MS,
    ),
    stalledIntervalMs: readInteger(
      env,
      'STALLED_INTERVAL_MS',
      30_000,
      1_000,
      MAX_TIMER_MS,
    ),
    shutdownGraceMs: readInteger(
      env,
      'SHUTDOWN_GRACE_MS',
      // Room for a 30 s attempt, the retries of its attempt-row write and
      // the closing of connections.
      60_000,
      0,
      MAX_TIMER_MS,
    ),
    allowedPrivateNetworks: readNetworks(env),
    bullBoardPath,
    bullBoardPublicPath,
    healthHost: readHost(env, 'HEALTH_HOST'),
    healthPort: readInteger(env, 'HEALTH_PORT', 0, 0, 65_535),
    metricsRefreshMs: readInteger(env, 'METRICS_REFRESH_MS', 5_000, 100, MAX_TIMER_MS),
    apiRequestTimeoutMs: readInteger(env, 'API_REQUEST_TIMEOUT_MS', 30_000, 1_000, 300_000),
    otelTracesEndpoint: readTracesEndpoint(env),
    idempotencyKeyTtlMs: readInteger(
      env,
      'IDEMPOTENCY_KEY_TTL_MS',
      86_400_000,
      1_000,
      30 * 86_400_000,
    ),
    logLevel,
  };
  return Object.freeze(config);
}

import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_SCHEDULE_MS, loadConfig } from '../../shared/config.js';
import { configError } from '../helpers/config-error.js';

describe('loadConfig defaults', () => {
  it('loads from an empty env', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: 'postgresql://root@127.0.0.1:5432/webhooks',
      databasePoolMax: 10,
      redisUrl: 'redis://127.0.0.1:6379',
      redisClusterNodes: [],
      queuePrefix: 'whk',
      deliveryQueueShards: 1,
      retryScheduleMs: [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
      retryJitter: 0.2,
      connectTimeoutMs: 10_000,
      attemptTimeoutMs: 30_000,
      leaseTimeoutMs: 60_000,
      probeTimeoutMs: 35_000,
      resendPageSize: 500,
      idempotencyKeyTtlMs: 86_400_000,
      dispatchConcurrency: 10,
      deliveryConcurrency: 50,
      apiHost: '127.0.0.1',
      apiPort: 3000,
      apiToken: '',
      maxPayloadBytes: 262_144,
      responseBodyLimitBytes: 65_536,
      sweepIntervalMs: 10_000,
      sweepGraceMs: 10_000,
      receiverDisableAfterMs: 432_000_000,
      retentionDays: 30,
      retentionIntervalMs: 3_600_000,
      retentionBatchSize: 1_000,
      jobLockDurationMs: 30_000,
      stalledIntervalMs: 30_000,
      shutdownGraceMs: 60_000,
      allowedPrivateNetworks: [],
      bullBoardPath: '/admin/queues',
      bullBoardPublicPath: '/admin/queues',
      healthHost: '127.0.0.1',
      healthPort: 0,
      metricsRefreshMs: 5_000,
      apiRequestTimeoutMs: 30_000,
      otelTracesEndpoint: '',
      logLevel: 'info',
    });
  });

  it('defaults the public board path to the board path', () => {
    expect(loadConfig({ BULL_BOARD_PATH: '/ops/queues' }).bullBoardPublicPath).toBe('/ops/queues');
  });

  it.each([
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, 'http://127.0.0.1:4318/v1/traces'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' }, 'http://127.0.0.1:4318/v1/traces'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/traces' }, 'http://127.0.0.1:4318/traces'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }, ''],
  ])('reads the traces endpoint from %j', (env, endpoint) => {
    expect(loadConfig(env).otelTracesEndpoint).toBe(endpoint);
  });

  it('reads the health port', () => {
    expect(loadConfig({ HEALTH_PORT: '9464' }).healthPort).toBe(9_464);
  });

  it('returns a frozen object', () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it('copies the default schedule', () => {
    const schedule = loadConfig({}).retryScheduleMs;
    expect(schedule).not.toBe(DEFAULT_RETRY_SCHEDULE_MS);
    expect(schedule).toEqual(DEFAULT_RETRY_SCHEDULE_MS);
  });

  it('treats empty values as unset', () => {
    const config = loadConfig({ ATTEMPT_TIMEOUT_MS: '', LOG_LEVEL: '', QUEUE_PREFIX: '' });
    expect(config.attemptTimeoutMs).toBe(30_000);
    expect(config.logLevel).toBe('info');
    expect(config.queuePrefix).toBe('whk');
  });
});

describe('loadConfig values', () => {
  it('parses a retry schedule', () => {
    expect(loadConfig({ RETRY_SCHEDULE_MS: ' 100 , 0,200 ' }).retryScheduleMs).toEqual([
      100, 0, 200,
    ]);
  });

  it('reads an empty schedule as the default', () => {
    expect(loadConfig({ RETRY_SCHEDULE_MS: ' ' }).retryScheduleMs).toEqual(
      DEFAULT_RETRY_SCHEDULE_MS,
    );
  });

  it('reads "none" as no retries', () => {
    expect(loadConfig({ RETRY_SCHEDULE_MS: 'none' }).retryScheduleMs).toEqual([]);
  });

  it('parses allowed networks', () => {
    expect(
      loadConfig({ ALLOWED_PRIVATE_NETWORKS: ' 127.0.0.0/8, ::1/128,,10.0.0.0/0 ' })
        .allowedPrivateNetworks,
    ).toEqual(['127.0.0.0/8', '::1/128', '10.0.0.0/0']);
  });

  it('derives the lease from the attempt timeout', () => {
    expect(loadConfig({ ATTEMPT_TIMEOUT_MS: '1000' }).leaseTimeoutMs).toBe(2_000);
  });

  it('derives the probe wait from the attempt timeout', () => {
    expect(loadConfig({ ATTEMPT_TIMEOUT_MS: '1000' }).probeTimeoutMs).toBe(6_000);
    expect(loadConfig({ PROBE_TIMEOUT_MS: '250' }).probeTimeoutMs).toBe(250);
  });

  it('accepts a lease just above the timeout', () => {
    const config = loadConfig({ ATTEMPT_TIMEOUT_MS: '1000', LEASE_TIMEOUT_MS: '1001' });
    expect(config.leaseTimeoutMs).toBe(1_001);
  });

  it('converts jitter percent to a fraction', () => {
    expect(loadConfig({ RETRY_JITTER_PERCENT: '35' }).retryJitter).toBe(0.35);
  });

  it('accepts the largest timer delay', () => {
    const config = loadConfig({ ATTEMPT_TIMEOUT_MS: '2147483647' });
    expect(config.attemptTimeoutMs).toBe(2_147_483_647);
  });

  it.each([
    ['DATABASE_URL', 'postgres://app@127.0.0.1:5433/hooks', 'databaseUrl'],
    ['REDIS_URL', 'rediss://127.0.0.1:6380', 'redisUrl'],
    ['QUEUE_PREFIX', '{whk}:prod-1', 'queuePrefix'],
    ['LOG_LEVEL', 'silent', 'logLevel'],
    ['BULL_BOARD_PATH', '/ops/queues', 'bullBoardPath'],
    ['BULL_BOARD_PUBLIC_PATH', '/ops/admin/queues', 'bullBoardPublicPath'],
    ['HEALTH_HOST', '0.0.0.0', 'healthHost'],
  ] as const)('accepts %s=%s', (variable, value, key) => {
    expect(loadConfig({ [variable]: value })[key]).toBe(value);
  });
});

describe('loadConfig errors', () => {
  it.each([
    ['RETRY_SCHEDULE_MS', '1,x'],
    ['RETRY_SCHEDULE_MS', '1,,2'],
    ['RETRY_SCHEDULE_MS', '-5'],
    ['RETRY_SCHEDULE_MS', '1.5'],
    ['RETRY_SCHEDULE_MS', '99999999999999999999'],
    ['ATTEMPT_TIMEOUT_MS', '-1'],
    ['ATTEMPT_TIMEOUT_MS', '0'],
    ['ATTEMPT_TIMEOUT_MS', 'abc'],
    ['ATTEMPT_TIMEOUT_MS', '1e3'],
    ['ATTEMPT_TIMEOUT_MS', '2147483648'],
    ['CONNECT_TIMEOUT_MS', '2147483648'],
    ['SWEEP_INTERVAL_MS', '99'],
    ['SWEEP_INTERVAL_MS', '2147483648'],
    ['SHUTDOWN_GRACE_MS', '2147483648'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'not a url'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['ALLOWED_PRIVATE_NETWORKS', '10.0.0.0/33'],
    ['ALLOWED_PRIVATE_NETWORKS', '::1/129'],
    ['ALLOWED_PRIVATE_NETWORKS', '10.0.0.0'],
    ['ALLOWED_PRIVATE_NETWORKS', '10.0.0.0/'],
    ['ALLOWED_PRIVATE_NETWORKS', '10.0.0.0/8/9'],
    ['ALLOWED_PRIVATE_NETWORKS', '10.0.0.0/1e1'],
    ['ALLOWED_PRIVATE_NETWORKS', '10.0.0.0/-1'],
    ['ALLOWED_PRIVATE_NETWORKS', 'example.com/8'],
    ['ALLOWED_PRIVATE_NETWORKS', '127.0.0.0/8,10.0.0.0/ 8'],
    ['QUEUE_PREFIX', 'a b'],
    ['QUEUE_PREFIX', 'a.b'],
    ['LOG_LEVEL', 'verbose'],
    ['API_PORT', '65536'],
    ['DATABASE_POOL_MAX', '0'],
    ['RETRY_JITTER_PERCENT', '101'],
    ['BULL_BOARD_PATH', 'admin'],
    ['BULL_BOARD_PATH', '/admin/'],
    ['BULL_BOARD_PUBLIC_PATH', 'ops/admin/queues'],
    ['HEALTH_PORT', '65536'],
    ['HEALTH_HOST', 'not a host'],
    ['METRICS_REFRESH_MS', '99'],
    ['API_REQUEST_TIMEOUT_MS', '999'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318'],
  ])('rejects %s=%j', (variable, value) => {
    const error = configError({ [variable]: value });
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.code).toBe('invalid_config');
  });

  it('rejects a lease equal to the timeout', () => {
    const error = configError({ ATTEMPT_TIMEOUT_MS: '1000', LEASE_TIMEOUT_MS: '1000' });
    expect(error.variable).toBe('LEASE_TIMEOUT_MS');
    expect(error.message).toBe(
      'LEASE_TIMEOUT_MS: must be between 1001 and 9007199254740991, got 1000',
    );
  });

  it('rejects a lease below the default timeout', () => {
    expect(configError({ LEASE_TIMEOUT_MS: '30000' }).variable).toBe('LEASE_TIMEOUT_MS');
  });

  it('explains a bad schedule', () => {
    expect(configError({ RETRY_SCHEDULE_MS: '1,x' }).message).toBe(
      'RETRY_SCHEDULE_MS: must be comma-separated delays in ms such as "1000,5000", or "none" for no retries, got "1,x"',
    );
  });

  it('explains a negative timeout', () => {
    expect(configError({ ATTEMPT_TIMEOUT_MS: '-1' }).message).toBe(
      'ATTEMPT_TIMEOUT_MS: must be a whole number, got "-1"',
    );
  });

  it('explains an oversize timer delay', () => {
    expect(configError({ ATTEMPT_TIMEOUT_MS: '2147483648' }).message).toBe(
      'ATTEMPT_TIMEOUT_MS: must be between 1 and 2147483647, got 2147483648',
    );
  });

  it('explains a wrong database scheme', () => {
    expect(configError({ DATABASE_URL: 'mysql://x' }).message).toBe(
      'DATABASE_URL: must use postgresql: or postgres:, got "mysql:"',
    );
  });

  it('explains a bad network', () => {
    expect(configError({ ALLOWED_PRIVATE_NETWORKS: '10.0.0.0/33' }).message).toBe(
      'ALLOWED_PRIVATE_NETWORKS: must be comma-separated CIDRs such as "127.0.0.0/8,::1/128", got "10.0.0.0/33"',
    );
  });

  it('explains a bad queue prefix', () => {
    expect(configError({ QUEUE_PREFIX: 'a b' }).message).toBe(
      'QUEUE_PREFIX: may contain only letters, digits, "_", "-", ":", "{" and "}", got "a b"',
    );
  });

  it('explains a bad log level', () => {
    expect(configError({ LOG_LEVEL: 'verbose' }).message).toBe(
      'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    );
  });
});

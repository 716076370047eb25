import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../shared/config.js';
import { createPrismaClient, type PrismaClient } from '../../shared/db/client.js';
import { adminUrl, databaseUrlFor } from './database-names.js';

/**
 * Settings that every test role shares, in process or spawned: loopback
 * receivers allowed, short retries, timeouts and sweeps.
 */
export const TEST_SETTINGS = {
  ALLOWED_PRIVATE_NETWORKS: '127.0.0.0/8,::1/128',
  RETRY_SCHEDULE_MS: '200,400',
  RETRY_JITTER_PERCENT: '0',
  CONNECT_TIMEOUT_MS: '1000',
  ATTEMPT_TIMEOUT_MS: '2000',
  SWEEP_INTERVAL_MS: '1000',
  SWEEP_GRACE_MS: '1000',
} as const;

/** A database cloned from the migrated template and a Redis key prefix, both private to one test file. */
export interface TestEnv {
  readonly databaseUrl: string;
  readonly queuePrefix: string;
  readonly redisUrl: string;
  /** Direct client for assertions on the tables. */
  readonly prisma: PrismaClient;
  /** Direct node-postgres pool for raw assertions. */
  readonly pool: pg.Pool;
  /** A config for this env, with loopback allowed and a short retry schedule. */
  config(overrides?: Record<string, string>): Config;
  /** Drops the database and deletes the Redis keys. */
  dispose(): Promise<void>;
}

export async function createTestEnv(): Promise<TestEnv> {
  const suffix = randomBytes(5).toString('hex');
  const database = `whk_test_${suffix}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(
      `CREATE DATABASE "${database}" TEMPLATE "${inject('templateDatabase')}"`,
    );
  } finally {
    await admin.end();
  }
  const databaseUrl = databaseUrlFor(database);
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const queuePrefix = `whk-test-${suffix}`;
  const prisma = createPrismaClient({
    databaseUrl,
    poolMax: 4,
    applicationName: 'webhook-test',
  });
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  // Tests that stop PostgreSQL sessions, and the forced drop in dispose(),
  // end idle connections; without a listener the pool's error would crash
  // the test file. The next query reconnects.
  pool.on('error', () => {});

  return {
    databaseUrl,
    queuePrefix,
    redisUrl,
    prisma,
    pool,
    config(overrides = {}) {
      return loadConfig({
        DATABASE_URL: databaseUrl,
        REDIS_URL: redisUrl,
        QUEUE_PREFIX: queuePrefix,
        ...TEST_SETTINGS,
        API_PORT: '0',
        DATABASE_POOL_MAX: '4',
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
        ...overrides,
      });
    },
    async dispose() {
      await prisma.$disconnect();
      await pool.end();
      await deleteKeys(redisUrl, `${queuePrefix}:*`);
      const cleanup = new pg.Client({ connectionString: adminUrl() });
      await cleanup.connect();
      try {
        await cleanup.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}

async function deleteKeys(redisUrl: string, pattern: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Polls `check` until it returns a value other than undefined or false. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting: ${options.message ?? 'condition not met'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

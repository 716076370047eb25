import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../../shared/config.js';
import { clusterOptions, queueKeyPattern } from '../../shared/queues.js';

/** How long the start-up checks wait for PostgreSQL and Redis, in ms. */
export const PREFLIGHT_TIMEOUT_MS = 3_000;

const START_HINT = 'start it with `docker compose up -d postgres redis`';

/** Returns `url` with its password removed, so that it can be printed. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '';
  return parsed.toString();
}

/** Returns the server part of a URL, such as `postgresql://root@127.0.0.1:5432`, without the password. */
export function serverAddress(url: string): string {
  const parsed = new URL(url);
  const user = parsed.username === '' ? '' : `${parsed.username}@`;
  return `${parsed.protocol}//${user}${parsed.host}`;
}

/** Returns `databaseUrl` with its database name replaced by `database`. */
export function withDatabase(databaseUrl: string, database: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** Returns the database name of a PostgreSQL URL. */
export function databaseName(databaseUrl: string): string {
  return decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
}

/**
 * Connects to the server of `databaseUrl` through its maintenance database
 * `postgres` (the named database may not exist yet) and runs `SELECT 1`.
 * Returns null when that works, or a message for the user.
 */
export async function checkPostgres(databaseUrl: string): Promise<string | null> {
  const client = new pg.Client({
    connectionString: withDatabase(databaseUrl, 'postgres'),
    connectionTimeoutMillis: PREFLIGHT_TIMEOUT_MS,
    application_name: 'webhook-demo',
  });
  // A connection that breaks after connect() reports here, not as a rejection.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (error) {
    const where = serverAddress(databaseUrl);
    // PostgreSQL's own errors carry a five-character SQLSTATE. Socket and
    // timeout errors have none and mean that the server was not reached.
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
      return `PostgreSQL at ${where} rejected the connection (SQLSTATE ${code}): ${(error as Error).message}`;
    }
    return `PostgreSQL is not reachable at ${where} (${errorText(error)}); ${START_HINT}`;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Connects to Redis once, without retries, and sends PING. Returns null when
 * the reply is PONG, or a message for the user.
 */
export async function checkRedis(redisUrl: string): Promise<string | null> {
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: PREFLIGHT_TIMEOUT_MS,
    commandTimeout: PREFLIGHT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let lastError: unknown;
  redis.on('error', (error) => {
    lastError = error;
  });
  const where = redactUrl(redisUrl);
  try {
    await redis.connect();
  } catch (error) {
    return `Redis is not reachable at ${where} (${errorText(lastError ?? error)}); ${START_HINT}`;
  }
  try {
    const reply = await redis.ping();
    return reply === 'PONG' ? null : `Redis at ${where} answered PING with "${reply}"`;
  } catch (error) {
    return `Redis at ${where} rejected PING: ${errorText(error)}`;
  } finally {
    redis.disconnect();
  }
}

/**
 * Checks the Redis of `config`: the REDIS_CLUSTER_NODES cluster when that is
 * set, else REDIS_URL. Returns null when it replies PONG to PING, or a
 * message for the user.
 */
export async function checkQueueRedis(config: Config): Promise<string | null> {
  if (config.redisClusterNodes.length === 0) return checkRedis(config.redisUrl);
  const where = config.redisClusterNodes.map(({ host, port }) => `${host}:${port}`).join(',');
  const cluster = new Cluster(
    config.redisClusterNodes.map(({ host, port }) => ({ host, port })),
    clusterOptions(
      config.redisUrl,
      { connectTimeout: PREFLIGHT_TIMEOUT_MS, maxRetriesPerRequest: 0 },
      { lazyConnect: true, enableOfflineQueue: false, clusterRetryStrategy: () => null },
    ),
  );
  let lastError: unknown;
  cluster.on('error', (error) => {
    lastError = error;
  });
  try {
    await cluster.connect();
    const reply = await cluster.ping();
    return reply === 'PONG' ? null : `Redis Cluster at ${where} answered PING with "${reply}"`;
  } catch (error) {
    return `Redis Cluster is not reachable at ${where} (${errorText(lastError ?? error)}); check REDIS_CLUSTER_NODES`;
  } finally {
    cluster.disconnect();
  }
}

/**
 * Deletes every key of this install's queues (see queueKeyPattern), on each
 * master when REDIS_CLUSTER_NODES is set.
 */
export async function deleteQueueKeys(config: Config): Promise<number> {
  if (config.redisClusterNodes.length === 0) {
    return deleteKeysWithPrefix(config.redisUrl, config.queuePrefix);
  }
  const cluster = new Cluster(
    config.redisClusterNodes.map(({ host, port }) => ({ host, port })),
    clusterOptions(
      config.redisUrl,
      { connectTimeout: PREFLIGHT_TIMEOUT_MS, maxRetriesPerRequest: 1 },
      { clusterRetryStrategy: () => null },
    ),
  );
  cluster.on('error', () => {});
  let deleted = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      cluster.once('ready', resolve);
      cluster.once('end', () => reject(new Error('the Redis Cluster connection closed')));
    });
    for (const node of cluster.nodes('master')) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', queueKeyPattern(config), 'COUNT', 1000);
        // One DEL per key: keys of different queues sit in different slots,
        // and a DEL of several keys must stay in one slot.
        for (const key of keys) deleted += await node.del(key);
        cursor = next;
      } while (cursor !== '0');
    }
  } finally {
    cluster.disconnect();
  }
  return deleted;
}

/**
 * Drops the database named in `databaseUrl` if it exists and creates it
 * empty, through the server's maintenance database `postgres`. WITH (FORCE),
 * which needs PostgreSQL 13 or later, ends sessions left by an interrupted run.
 */
export async function recreateDatabase(databaseUrl: string): Promise<void> {
  const name = databaseName(databaseUrl);
  const quoted = `"${name.replaceAll('"', '""')}"`;
  const client = new pg.Client({
    connectionString: withDatabase(databaseUrl, 'postgres'),
    connectionTimeoutMillis: PREFLIGHT_TIMEOUT_MS,
    application_name: 'webhook-demo',
  });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoted}`);
  } finally {
    await client.end();
  }
}

/** Deletes every Redis key under `prefix`, such as the demo's BullMQ keys. */
export async function deleteKeysWithPrefix(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, {
    connectTimeout: PREFLIGHT_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) deleted += await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

function errorText(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return error.errors.map(errorText).join('; ');
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const message = error.message === '' ? error.name : error.message;
    return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
  }
  return String(error);
}

/**
 * Runs the reachability checks together and prints each problem to stderr.
 * Returns whether every service replied.
 */
export async function reportUnreachable(
  checks: readonly Promise<string | null>[],
): Promise<boolean> {
  const problems = (await Promise.all(checks)).filter((problem) => problem !== null);
  for (const problem of problems) console.error(problem);
  return problems.length === 0;
}

import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/client.js';

export { Prisma, PrismaClient } from './generated/client.js';

export interface DatabaseOptions {
  databaseUrl: string;
  poolMax: number;
  applicationName: string;
  /**
   * Limits of Prisma's interactive transactions in ms: `maxWait` to start
   * one, `timeout` to finish it. Prisma's defaults (2000 and 5000) apply
   * when absent.
   */
  transactionOptions?: { maxWait?: number; timeout?: number };
}

/** A node-postgres pool and a Prisma client that draws on it. */
export interface Database {
  readonly pool: pg.Pool;
  readonly prisma: PrismaClient;
  close(): Promise<void>;
}

/**
 * Opens one connection pool for a process and a Prisma client on top of it.
 * Hot paths run their few statements on the pool directly, which costs a
 * fraction of the CPU of a Prisma raw query (about 5 times less measured
 * here), while the two share at most `poolMax` connections, so that many
 * processes fit behind one PostgreSQL or PgBouncer.
 */
export function createDatabase(options: DatabaseOptions): Database {
  const pool = createPool(options);
  const adapter = new PrismaPg(pool, { disposeExternalPool: false });
  const prisma = newPrismaClient(adapter, options);
  let closing: Promise<void> | undefined;
  return {
    pool,
    prisma,
    close() {
      closing ??= prisma.$disconnect().finally(() => pool.end());
      return closing;
    },
  };
}

/** Creates a Prisma client with a pool of its own, which `$disconnect()` ends. */
export function createPrismaClient(options: DatabaseOptions): PrismaClient {
  const adapter = new PrismaPg(createPool(options), { disposeExternalPool: true });
  return newPrismaClient(adapter, options);
}

function newPrismaClient(adapter: PrismaPg, options: DatabaseOptions): PrismaClient {
  return new PrismaClient({
    adapter,
    // Minimal errors keep Prisma's source excerpts out of logs and API output.
    errorFormat: 'minimal',
    ...(options.transactionOptions === undefined
      ? {}
      : { transactionOptions: options.transactionOptions }),
  });
}

/**
 * Opens a pool whose sessions use UTC and whose checked-out clients go back
 * to the pool when their connection fails (see `guardCheckouts`).
 */
export function createPool(options: DatabaseOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.poolMax,
    application_name: options.applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // @prisma/adapter-pg 6.19 reads a timestamptz by replacing its UTC
    // offset with +00:00 and writes a Date as UTC digits without an offset,
    // so both are off by the session's offset unless the session is in UTC.
    // The database or role may set another zone, so every connection sets
    // its own. PgBouncer tracks TimeZone per client in every pool mode
    // (pgbouncer.org/features.html), so the setting also applies behind it.
    onConnect: (client) => client.query("SET TIME ZONE 'UTC'"),
  });
  // An idle connection that PostgreSQL drops emits an error on the pool;
  // without a listener Node would crash. The next query reconnects.
  pool.on('error', () => {});
  guardCheckouts(pool);
  return pool;
}

/** The transaction status of a session, from PostgreSQL's ReadyForQuery message. */
type TransactionStatus = 'I' | 'T' | 'E';

/**
 * Makes every client checked out with `pool.connect()` safe to lose:
 *
 * - When its connection fails, the client goes back to the pool at once,
 *   which closes it and frees its slot. @prisma/adapter-pg 6.19 releases a
 *   transaction's client only after its COMMIT or ROLLBACK succeeded, so a
 *   connection lost inside a transaction otherwise stays checked out for
 *   good, and after `poolMax` such losses every query times out waiting for
 *   a connection.
 * - A client released while its session is still inside a transaction
 *   ('T', or 'E' after a failed statement) is closed instead of pooled.
 *   PostgreSQL then rolls the transaction back, and the next user of the
 *   pool cannot inherit it.
 * - Releasing twice is a no-op, because both of the above may release a
 *   client before its holder does.
 *
 * `pool.query()` checks out with a callback and already releases on errors,
 * so that path is left as it is.
 */
function guardCheckouts(pool: pg.Pool): void {
  const statuses = new WeakMap<pg.PoolClient, TransactionStatus>();
  pool.on('connect', (client) => {
    // `connection` is node-postgres's protocol stream (pg 8); it is not in
    // the type definitions.
    const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
    connection.on('readyForQuery', (message: { status: TransactionStatus }) => {
      statuses.set(client as pg.PoolClient, message.status);
    });
  });

  const connect = pool.connect.bind(pool);
  const guardedConnect = (callback?: Parameters<pg.Pool['connect']>[0]) => {
    if (callback !== undefined) return connect(callback);
    return connect().then((client) => guardClient(client, statuses));
  };
  pool.connect = guardedConnect as pg.Pool['connect'];
}

function guardClient(
  client: pg.PoolClient,
  statuses: WeakMap<pg.PoolClient, TransactionStatus>,
): pg.PoolClient {
  const release = client.release;
  let released = false;
  const releaseOnce = (error?: Error | boolean) => {
    if (released) return;
    released = true;
    client.removeListener('error', onConnectionError);
    const status = statuses.get(client);
    if (!error && status !== undefined && status !== 'I') {
      release(new Error(`client released inside an open transaction (status ${status}); closing it`));
      return;
    }
    release(error);
  };
  const onConnectionError = (error: Error) => releaseOnce(error);
  client.on('error', onConnectionError);
  client.release = releaseOnce;
  return client;
}

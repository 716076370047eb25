import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/client.js';

export { Prisma, PrismaClient } from './generated/client.js';

export interface DatabaseOptions {
  databaseUrl: string;
  poolMax: number;
  applicationName: string;
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
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.poolMax,
    application_name: options.applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle connection that PostgreSQL drops emits an error on the pool;
  // without a listener Node would crash. The next query reconnects.
  pool.on('error', () => {});
  const adapter = new PrismaPg(pool, { disposeExternalPool: false });
  // Minimal errors keep Prisma's source excerpts out of logs and API output.
  const prisma = new PrismaClient({ adapter, errorFormat: 'minimal' });
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

/** Creates a Prisma client with a pool of its own. */
export function createPrismaClient(options: DatabaseOptions): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: options.databaseUrl,
    max: options.poolMax,
    application_name: options.applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // Minimal errors keep Prisma's source excerpts out of logs and API output.
  return new PrismaClient({ adapter, errorFormat: 'minimal' });
}

import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.js';

export { Prisma, PrismaClient } from './generated/client.js';

/**
 * Creates the Prisma client of one process. Its pool never opens more than
 * `poolMax` connections, so that many processes fit behind one PostgreSQL
 * (or PgBouncer in transaction mode).
 */
export function createPrismaClient(options: {
  databaseUrl: string;
  poolMax: number;
  applicationName: string;
}): PrismaClient {
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

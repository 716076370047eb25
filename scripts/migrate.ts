import pg from 'pg';
import { ConfigError, loadConfig } from '../shared/config.js';
import { isConnectionError } from '../shared/db/connection-errors.js';
import { migrateDatabase } from '../shared/db/migrate.js';

/** Returns the host and port of DATABASE_URL for messages, or a fallback when it is unreadable. */
function databaseHost(): string {
  try {
    return `${new URL(loadConfig().databaseUrl).host} (DATABASE_URL)`;
  } catch {
    return 'the address in DATABASE_URL';
  }
}

/** Creates the database named in `databaseUrl` when the server lacks it. */
async function ensureDatabase(databaseUrl: string): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({
    connectionString: admin.toString(),
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
      console.log(`created database ${name}`);
    }
  } finally {
    await client.end();
  }
}

try {
  const config = loadConfig();
  await ensureDatabase(config.databaseUrl);
  const applied = await migrateDatabase(config.databaseUrl);
  const target = new URL(config.databaseUrl);
  const where = `${target.host}${target.pathname}`;
  console.log(
    applied.length === 0
      ? `database ${where} is up to date`
      : `applied ${applied.join(', ')} to ${where}`,
  );
} catch (error) {
  const message =
    error instanceof ConfigError
      ? `invalid configuration: ${error.message}`
      : isConnectionError(error)
        ? `migration failed: PostgreSQL is unreachable at ${databaseHost()} (${String(error)}); start it or set DATABASE_URL`
        : `migration failed: ${String(error)}`;
  console.error(message);
  process.exit(1);
}
